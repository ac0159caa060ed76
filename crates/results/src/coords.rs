//! Coordinates of a metric value: an ordered map from a name to an
//! integer, a float or a string.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One coordinate value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Coord {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Coord {
    /// The value as a number, where it is one (for plot axes).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Coord::Int(i) => Some(*i as f64),
            Coord::Float(f) => Some(*f),
            Coord::Str(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Coord::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl fmt::Display for Coord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Coord::Int(i) => write!(f, "{i}"),
            Coord::Float(x) => write!(f, "{x}"),
            Coord::Str(s) => f.write_str(s),
        }
    }
}

/// Coordinates from numbers: whole numbers as `Int`, the rest as `Float`.
macro_rules! coord_from {
    ($($t:ty => $variant:ident($as:ty)),+) => {$(
        impl From<$t> for Coord {
            #[allow(clippy::unnecessary_cast)] // i64 as i64, f64 as f64
            fn from(v: $t) -> Self {
                Coord::$variant(v as $as)
            }
        }
    )+};
}

coord_from!(usize => Int(i64), i64 => Int(i64), u32 => Int(i64), f64 => Float(f64));
impl From<&str> for Coord {
    fn from(v: &str) -> Self {
        Coord::Str(v.to_string())
    }
}
impl From<String> for Coord {
    fn from(v: String) -> Self {
        Coord::Str(v)
    }
}

/// Coordinates in the order they were given (serialised as a JSON object).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Coords(Vec<(String, Coord)>);

impl Coords {
    pub fn new() -> Self {
        Self::default()
    }

    /// These coordinates with `name` set to `value` (replaced if present).
    pub fn with(mut self, name: &str, value: impl Into<Coord>) -> Self {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: &str, value: impl Into<Coord>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Coord> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// An integer coordinate as an index (`after_task`, `task`, `epoch`).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.get(name)
            .and_then(Coord::as_i64)
            .and_then(|i| usize::try_from(i).ok())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Coord)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `name=value` pairs joined by spaces, for labels.
    pub fn describe(&self) -> String {
        self.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl<K: Into<String>, V: Into<Coord>> FromIterator<(K, V)> for Coords {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut c = Coords::new();
        for (k, v) in iter {
            c.set(&k.into(), v);
        }
        c
    }
}

impl Serialize for Coords {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Coords {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CoordsVisitor;
        impl<'de> Visitor<'de> for CoordsVisitor {
            type Value = Coords;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of coordinate names to integers, floats or strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Coords, A::Error> {
                let mut out = Coords::new();
                while let Some((k, v)) = map.next_entry::<String, Coord>()? {
                    out.set(&k, v);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(CoordsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_types_through_json() {
        let c = Coords::new()
            .with("stage", "fine-tune")
            .with("task", 2usize)
            .with("angle", 45.0)
            .with("epoch", 0usize);
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"stage":"fine-tune","task":2,"angle":45.0,"epoch":0}"#
        );
        let back: Coords = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.index("task"), Some(2));
        assert_eq!(back.get("angle"), Some(&Coord::Float(45.0)));
        assert_eq!(back.describe(), "stage=fine-tune task=2 angle=45 epoch=0");
    }
}
