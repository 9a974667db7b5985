//! Contract tier: each provider emulator behind Prism (`@stoplight/prism-cli` 5.16, proxy
//! mode, `--errors`) configured with the provider's official OpenAPI document, so that a
//! contract nobody here wrote judges the emulators (README.md, "Test tiers").
//!
//! What the tests show, per provider:
//! - valid requests reach the emulator and its answers conform to the document: with
//!   `--errors` Prism turns a response violation into its own 500, and it reports every
//!   violation (warnings too) in an `sl-violations` header, which must be absent;
//! - requests the document makes invalid are refused by Prism without being forwarded
//!   (proxy mode always answers them with 422, its UNPROCESSABLE_ENTITY problem, whatever
//!   status the provider uses) and rejected by the emulator too when sent directly, with the
//!   provider's own status, whose body is then checked against the documented error schema;
//! - requests the document allows but the real server rejects (rules the schema cannot
//!   express, [C]/[D] in docs/providers.md) reach the emulator, whose rejection must conform to the
//!   documented error response;
//! - error statuses an operation does not document are relayed with only Prism's "unable to
//!   match the returned status code" warning; their bodies are checked against the
//!   document's error schema where one exists.
//!
//! Where the document and docs/providers.md disagree, the test says so at that spot and
//! follows the server's behaviour as docs/providers.md records it ([C] facts).
//!
//! Findings (document vs docs/providers.md vs emulator; each is explained at its test):
//! - Prism's proxy answers every request violation with 422; the providers use 400 (Nango,
//!   Are.na; Datagrid by our choice) or 422 (Mielto, FastAPI). Non-JSON bodies: Prism puts a
//!   415 inside its 422; Nango and Datagrid answer 415, Mielto 422, Are.na 400.
//! - Nango `ConnectionFull.metadata` is `object` in the document but `null` when never set
//!   (`nango::never_set_metadata_is_null_which_only_the_list_schema_allows`).
//! - Nango `StdError` forbids extra fields, yet the server's 401 has `payload` and its 429
//!   `method` and `path`; no operation lists 401, 403 or 429, nor 404 on the metadata writes
//!   (`nango::auth_and_rate_limit_errors_are_undocumented_statuses`, `..._403s_...`,
//!   `nango::not_found_conforms_to_std_error`).
//! - Nango's server is stricter than its document (unknown query/body keys, id patterns,
//!   `limit` 1..2000, empty query on writes): Prism forwards, the emulator's 400 conforms
//!   (`nango::stricter_server_rules_reach_the_emulator_and_conform`).
//! - Mielto accepts `X-API-Key`, which the document's bearer-only DualAuthScheme omits, so
//!   Prism refuses it (`mielto::api_key_header_is_accepted_...`); 401/403/429 undocumented.
//!   FastAPI's lax booleans (`1`, `yes`, `off`...) pass the server but not Prism
//!   (`mielto::pydantic_booleans_beyond_true_and_false_are_refused_only_by_prism`).
//! - Are.na: integer ids in the document vs "ID or slug" in the rendered docs (integers);
//!   304 from `If-None-Match` is in the docs' prose but not the document; key pattern,
//!   50 keys on the merged result and 32 KB are beyond the schema (422). The GET lists no
//!   400 though the server validates it; Prism lets `5.0` and `1e3` pass as integer ids.
//! - Datagrid: `valid`/`value` are nullable in the SDK, not in the document (omitted when
//!   unknown); the list endpoint is not in the document; 400/401/415 are undocumented.
//! - Prism 5.16's proxy never answers a request whose body is not valid JSON (it hangs), so
//!   malformed bodies are left to the emulators' own tests.
//! - No document needed a derived copy: Prism ignores `servers` (Datagrid's `/v1`) and keeps
//!   the upstream URL's path prefix.
//!
//! Needs Prism from `scripts/bootstrap` (`.tools/`, or `CONNECTION_OPERATOR_TOOLS`) and the
//! providers' own API descriptions in `providers/openapi/` (see `providers/README.md`).

// The modules live in contract/ (a test crate root resolves `mod` paths beside itself).
#[path = "contract/exchange.rs"]
mod exchange;
#[path = "contract/fixture.rs"]
mod fixture;
#[path = "contract/schema.rs"]
mod schema;

#[path = "contract/self_check.rs"]
mod self_check;

#[path = "contract/arena.rs"]
mod arena;
#[path = "contract/datagrid.rs"]
mod datagrid;
#[path = "contract/mielto.rs"]
mod mielto;
#[path = "contract/nango.rs"]
mod nango;
