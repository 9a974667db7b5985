//! Contract tier: each provider emulator behind Prism (`@stoplight/prism-cli` 5.16, proxy
//! mode, `--errors`) configured with the provider's official OpenAPI document, so that a
//! contract nobody here wrote judges the emulators (DESIGN.md, test tier 2).
//!
//! What the tests show, per provider:
//! - valid requests reach the emulator and its answers conform to the document: with
//!   `--errors` Prism turns a response violation into its own 500, and it reports every
//!   violation (warnings too) in an `sl-violations` header, which must be absent;
//! - requests the document makes invalid are refused by Prism without being forwarded
//!   (proxy mode always answers them with 422, its UNPROCESSABLE_ENTITY problem, whatever
//!   status the provider uses) and rejected by the emulator too when sent directly, with the
//!   provider's own status, whose body is then checked against the documented error schema;
//! - requests the document allows but the real server rejects (REFERENCE.md [C]/[D] rules the
//!   schema cannot express) reach the emulator, whose rejection must conform to the
//!   documented error response;
//! - error statuses an operation does not document are relayed with only Prism's "unable to
//!   match the returned status code" warning; their bodies are checked against the
//!   document's error schema where one exists.
//!
//! Where the document and REFERENCE.md disagree, the test says so at that spot and follows
//! the documented server behaviour (REFERENCE.md [C] facts).
//!
//! Needs Prism from `scripts/bootstrap` (`.tools/`, or `CONNECTION_OPERATOR_TOOLS`) and the
//! official documents in `shared/providers/openapi/` beside the repository.

// The modules live in contract/ (a test crate root resolves `mod` paths beside itself).
#[path = "contract/exchange.rs"]
mod exchange;
#[path = "contract/fixture.rs"]
mod fixture;
#[path = "contract/locate.rs"]
mod locate;
#[path = "contract/process.rs"]
mod process;
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
