//! The one way every protocol registers its methods.
//!
//! A method is a file holding a typed config (serde, `deny_unknown_fields`,
//! defaults) that implements [`Method`] and its protocol's capability
//! trait (what the protocol needs from a method: tune, adapt, learn a
//! task...). The protocol's `methods/mod.rs` lists every method once in
//! [`register_methods!`]: one line each gives the module, the YAML name, the
//! enum variant grids deserialise into, the name, the label, validation and
//! dispatch.

use crate::error::CoreError;

/// What every method of every protocol offers, whatever the protocol asks
/// of it beyond this.
pub trait Method {
    /// Checks settings that types cannot (ranges, consistency). Errors
    /// carry the config key at fault (`CoreError::Config`, such as
    /// `method.lambda`), so that `validate` names the grid's line.
    fn validate(&self) -> Result<(), CoreError> {
        Ok(())
    }

    /// The method column of the cell's rows: the registered `name`, or a
    /// longer name where a setting makes it another method (`der++ +lp`,
    /// `retrain+backbone`).
    fn label(&self, name: &'static str) -> String {
        name.to_string()
    }
}

/// Registers a protocol's methods: one line per method,
/// `Variant = "yaml-name" in module`, where `module.rs` beside the
/// invocation defines the config struct `Variant` implementing
/// [`Method`] and `$capability`. Generates the modules, re-exports the
/// structs, and an enum deserialised from `{ name: yaml-name, ... }` with
/// `name()`, `label()`, `validate()`, `spec()` (the method as
/// `&dyn $capability`) and `NAMES`.
#[macro_export]
macro_rules! register_methods {
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident: dyn $capability:path {
            $( $(#[$vmeta:meta])* $variant:ident = $name:literal in $module:ident ),+ $(,)?
        }
    ) => {
        $( mod $module; pub use $module::$variant; )+

        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(tag = "name", deny_unknown_fields)]
        $vis enum $enum {
            $( $(#[$vmeta])* #[serde(rename = $name)] $variant($variant), )+
        }

        impl $enum {
            /// Every registered name, in registration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name grids give in `method.name`.
            pub fn name(&self) -> &'static str {
                match self { $( Self::$variant(_) => $name, )+ }
            }

            /// The method as its protocol uses it.
            pub fn spec(&self) -> &dyn $capability {
                match self { $( Self::$variant(m) => m, )+ }
            }

            /// The method column of the cell's rows (see
            /// [`Method::label`]($crate::method::Method::label)).
            pub fn label(&self) -> String {
                match self { $( Self::$variant(m) => $crate::method::Method::label(m, $name), )+ }
            }

            /// The method's own checks (see [`Method::validate`]($crate::method::Method::validate)).
            pub fn validate(&self) -> Result<(), $crate::CoreError> {
                match self { $( Self::$variant(m) => $crate::method::Method::validate(m), )+ }
            }
        }
    };
}
