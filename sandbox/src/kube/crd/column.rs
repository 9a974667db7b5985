//! A Table column and what its cells are made of, shared by the Table renderer (`table`)
//! and the built-in kinds' column sets (`builtin_columns`), which sits below both.

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    /// JSONPath into the object, e.g. `.spec.connectionId`; empty for built-in computed columns.
    pub json_path: String,
    /// How a built-in column's cell is computed (`None` for JSONPath columns).
    pub computed: Option<Computed>,
}

impl Column {
    pub(super) fn computed(
        name: &str,
        type_: &str,
        format: &str,
        priority: i64,
        description: &str,
        c: Computed,
    ) -> Self {
        Self {
            name: name.to_owned(),
            type_: type_.to_owned(),
            format: format.to_owned(),
            description: description.to_owned(),
            priority,
            json_path: String::new(),
            computed: Some(c),
        }
    }
}

/// How a built-in column's cell is computed from the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Computed {
    Name,
    /// `translateTimestampSince(creationTimestamp)`.
    Age,
    /// `creationTimestamp` as RFC 3339 UTC (the default table convertor's `Created At`).
    CreatedAt,
    /// A string at a JSON pointer ("" when absent).
    Text(&'static str),
    /// An integer at a JSON pointer (0 when absent, like an unset int32 field).
    Int(&'static str),
    /// Number of entries of the maps/lists at these pointers.
    Count(&'static [&'static str]),
    DeploymentReady,
    Containers,
    Images,
    Selector(&'static str),
    RoleRef,
    Subjects(&'static str),
    ServicePorts,
    ExternalIps,
    IntOrStringOrNone(&'static str),
    EventLastSeen,
    EventFirstSeen,
    EventObject,
    EventSubobject,
    EventSource,
    EventMessage,
    EventCount,
    EventType,
    EventReason,
    /// A CRD's served versions, the storage one marked `(storage)`, comma-separated.
    CrdVersions,
    /// A CRD's short names, comma-separated.
    CrdShortNames,
    /// Whether a CRD's `Established` condition is `True`.
    CrdEstablished,
}

pub(super) const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(super) const CREATION_TIMESTAMP_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// apimachinery `util/duration.HumanDuration`, the age format of `kubectl get`.
pub(super) fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_owned();
    } else if seconds < 0 {
        return "0s".to_owned();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}
