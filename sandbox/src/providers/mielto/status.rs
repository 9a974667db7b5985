//! Mielto's connection status values, used both by the stored connection (`model`) and by
//! request validation (`validation`), so it sits below the two.

/// `ConnectionStatus` enum of `mielto.yaml`, in the schema's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    Inactive,
    Testing,
    Error,
    Expired,
}

impl ConnectionStatus {
    const ALL: [(ConnectionStatus, &'static str); 5] = [
        (Self::Active, "active"),
        (Self::Inactive, "inactive"),
        (Self::Testing, "testing"),
        (Self::Error, "error"),
        (Self::Expired, "expired"),
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == s).map(|(v, _)| *v)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(v, _)| *v == self).map(|(_, n)| *n).unwrap_or("active")
    }

    /// pydantic v2's rendering of an enum's choices: `'a', 'b' or 'c'`.
    pub fn expected_list() -> String {
        let quoted: Vec<String> = Self::ALL.iter().map(|(_, n)| format!("'{n}'")).collect();
        let (last, rest) = quoted.split_last().expect("enum has members");
        format!("{} or {last}", rest.join(", "))
    }
}
