//! The one way every protocol registers its methods.
//!
//! A method is a file holding a typed config (serde, `deny_unknown_fields`,
//! defaults) that implements [`Method`] and its protocol's capability
//! trait (what the protocol needs from a method: tune, adapt, learn a
//! task...). The protocol's `methods/mod.rs` lists every method once in
//! [`register_methods!`]: one line each gives the module, the YAML name, the
//! enum variant grids deserialise into, the name, the label, validation and
//! dispatch.

use serde::de::{DeserializeOwned, Error, Unexpected};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

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
        #[derive(Debug, Clone, PartialEq, ::serde::Serialize)]
        #[serde(tag = "name")]
        $vis enum $enum {
            $( $(#[$vmeta])* #[serde(rename = $name)] $variant($variant), )+
        }

        // By hand, not derived: serde's tagged enums buffer the map and
        // lose the key path inside it, so `method.optimizer.lr` would be
        // reported as `method`.
        impl<'de> ::serde::Deserialize<'de> for $enum {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::method::deserialize_tagged(d, Self::NAMES, |name, settings| match name {
                    $( $name => $crate::method::settings(settings).map(Self::$variant), )+
                    _ => unreachable!("deserialize_tagged passes registered names only"),
                })
            }
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

/// An error at `path` inside a tagged value, as one message that keeps the
/// path: `at `optimizer.lr`: must be > 0, got -1`. The grid loader joins
/// it to the outer key ([`split_nested`]).
#[derive(Debug)]
pub struct Nested {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Nested {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at `{}`: {}", self.path, self.message)
        }
    }
}

/// `key` joined with the path a [`Nested`] message carries, and the bare
/// message: (`method.optimizer.lr`, `must be > 0, got -1`). Messages that
/// carry no path come back as they are, at `key`.
pub fn split_nested(key: &str, message: &str) -> (String, String) {
    let mut key = key.to_string();
    let mut message = message;
    while let Some(rest) = message.strip_prefix("at `")
        && let Some((path, inner)) = rest.split_once("`: ")
    {
        key = if key.is_empty() {
            path.to_string()
        } else {
            format!("{key}.{path}")
        };
        message = inner;
    }
    (key, message.to_string())
}

/// Reads `{ name: ..., settings... }`: the name must be one of `names`;
/// `parse` gets it with the settings (the map less `name`).
pub fn deserialize_tagged<'de, D, T>(
    d: D,
    names: &'static [&'static str],
    parse: impl FnOnce(&str, Value) -> Result<T, Nested>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let mut value = Value::deserialize(d)?;
    let Some(map) = value.as_object_mut() else {
        return Err(D::Error::invalid_type(
            unexpected(&value),
            &"a map with `name`",
        ));
    };
    // Errors in the name are the name's (`method.name`), as serde says them.
    let at_name = |e: serde::de::value::Error| {
        D::Error::custom(Nested {
            path: "name".into(),
            message: e.to_string(),
        })
    };
    let name = match map.remove("name") {
        Some(Value::String(name)) => name,
        Some(other) => return Err(at_name(Error::invalid_type(unexpected(&other), &"a name"))),
        None => return Err(D::Error::missing_field("name")),
    };
    let Some(&name) = names.iter().find(|n| **n == name) else {
        return Err(at_name(Error::unknown_variant(&name, names)));
    };
    parse(name, value).map_err(D::Error::custom)
}

/// A method's settings as its config type, with the key path of any error.
pub fn settings<T: DeserializeOwned>(settings: Value) -> Result<T, Nested> {
    serde_path_to_error::deserialize(settings).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let (path, message) = split_nested(&path, &e.into_inner().to_string());
        Nested { path, message }
    })
}

fn unexpected(v: &Value) -> Unexpected<'_> {
    match v {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(_) => Unexpected::Other("a number"),
        Value::String(s) => Unexpected::Str(s),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_paths_join_the_outer_key() {
        assert_eq!(
            split_nested("method", "at `optimizer.lr`: must be > 0, got -1"),
            ("method.optimizer.lr".into(), "must be > 0, got -1".into())
        );
        assert_eq!(
            split_nested("method", "unknown field `x`"),
            ("method".into(), "unknown field `x`".into())
        );
        assert_eq!(
            split_nested("", "at `a`: at `b`: m"),
            ("a.b".into(), "m".into())
        );
    }
}
