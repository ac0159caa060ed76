//! Numbers with a range, for config structs.
//!
//! A field typed `Positive` or `Probability` cannot hold a value outside
//! its range: deserialisation refuses it with `must be > 0, got -1`, and
//! the grid loader adds the file, the line and the key (`method.lambda`).
//! So a method's `validate` keeps only the checks that span several fields,
//! and every range is stated once, on the type.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A value outside its type's range.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfRange {
    /// The range as a sentence ends: `> 0`, `in [0, 1]`.
    pub range: &'static str,
    /// The refused value, as written.
    pub value: String,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "must be {}, got {}", self.range, self.value)
    }
}

impl std::error::Error for OutOfRange {}

macro_rules! bounded {
    ($( $(#[$meta:meta])* $name:ident($inner:ty): $range:literal if |$v:ident| $ok:expr; )+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
        #[serde(transparent)]
        pub struct $name($inner);

        #[allow(clippy::manual_range_contains)] // `contains` is not `const`
        impl $name {
            /// The range, as [`OutOfRange`] states it.
            pub const RANGE: &'static str = $range;

            /// The value, if it is in range.
            pub fn new($v: $inner) -> Result<Self, OutOfRange> {
                if $ok {
                    Ok(Self($v))
                } else {
                    Err(OutOfRange { range: $range, value: $v.to_string() })
                }
            }

            /// A constant known to be in range (defaults); out of range is
            /// a compile-time error where used in a `const`, a panic elsewhere.
            pub const fn of($v: $inner) -> Self {
                assert!($ok, concat!("out of range: must be ", $range));
                Self($v)
            }

            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl From<$name> for $inner {
            fn from(v: $name) -> $inner {
                v.0
            }
        }

        impl TryFrom<$inner> for $name {
            type Error = OutOfRange;
            fn try_from(v: $inner) -> Result<Self, OutOfRange> {
                Self::new(v)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(<$inner>::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    )+};
}

bounded! {
    /// A finite number above zero: learning rates, temperatures, tolerances.
    Positive(f64): "> 0" if |v| v.is_finite() && v > 0.0;
    /// A finite number, zero or more: penalty weights, weight decay.
    NonNegative(f64): ">= 0" if |v| v.is_finite() && v >= 0.0;
    /// A number in [0, 1]: mixing weights, decays, probabilities.
    Probability(f64): "in [0, 1]" if |v| v >= 0.0 && v <= 1.0;
    /// A number in [0, 1): momentum, a dropout rate.
    BelowOne(f64): "in [0, 1)" if |v| v >= 0.0 && v < 1.0;
    /// A number in (0, 1]: a share that cannot be empty (a crop, a target fraction).
    Share(f64): "in (0, 1]" if |v| v > 0.0 && v <= 1.0;
    /// A count of one or more: widths, layers, neighbours, steps.
    PositiveInt(usize): ">= 1" if |v| v >= 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_range_are_refused_with_the_range() {
        let err = serde_json::from_str::<Positive>("-1")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "must be > 0, got -1");
        let err = serde_json::from_str::<Probability>("1.5")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "must be in [0, 1], got 1.5");
        let err = serde_json::from_str::<PositiveInt>("0")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "must be >= 1, got 0");
        assert!(serde_json::from_str::<BelowOne>("1").is_err());
        assert!(serde_json::from_str::<Share>("0").is_err());
        assert!(serde_json::from_str::<NonNegative>("NaN").is_err());
        assert!(Positive::new(f64::INFINITY).is_err());
    }

    #[test]
    fn values_in_range_read_and_write_as_plain_numbers() {
        let p: Probability = serde_json::from_str("0.5").unwrap();
        assert_eq!(p.get(), 0.5);
        assert_eq!(serde_json::to_string(&p).unwrap(), "0.5");
        let n: PositiveInt = serde_json::from_str("3").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "3");
        assert_eq!(NonNegative::of(0.0).get(), 0.0);
        assert!(BelowOne::new(0.9).is_ok() && Share::new(1.0).is_ok());
    }
}
