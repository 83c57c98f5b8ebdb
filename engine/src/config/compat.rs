//! Reads a configuration written for MediaMTX without losing positions: a [`Deserializer`]
//! wrapper that sits between the YAML (or JSON) deserializer and [`super::Config`]'s derived
//! `Deserialize`.
//!
//! At the top level, in `pathDefaults` and in each `paths` entry it takes every key the target
//! struct does not have: a MediaMTX key ([`super::mediamtx`]) is checked against its kind and
//! kept aside in [`Kept`]; anything else is refused as an unknown field *while its key is being
//! read*, so serde_yaml_ng puts the key's line and column on the error. Everywhere below, a
//! `bool` is read as YAML 1.1 reads it (`yes`/`no`/`on`/`off`), as MediaMTX does. Values go to
//! the derived code straight from the underlying deserializer, so their errors keep their
//! positions too.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::Deserialize as _;
use serde_json::Value;

use super::mediamtx::{self, Kind, Level};

/// MediaMTX keys taken aside while deserializing, as written (booleans normalized).
#[derive(Debug, Default)]
pub(super) struct Kept {
    pub global: BTreeMap<String, Value>,
    pub path_defaults: BTreeMap<String, Value>,
    pub paths: BTreeMap<String, BTreeMap<String, Value>>,
    /// Keys of the target structs the input set, per level (`""`, `pathDefaults`, a path
    /// name), for the report.
    pub own: Vec<(Where, String)>,
}

/// Which map a key was found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Where {
    Global,
    PathDefaults,
    Path(String),
}

impl Where {
    fn level(&self) -> Level {
        match self {
            Where::Global => Level::Global,
            _ => Level::Path,
        }
    }
}

/// The position of a value in the configuration's tree, as far as the filter cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// The configuration itself.
    Top,
    PathDefaults,
    /// The `paths` map: its values are entries.
    PathsMap,
    /// One `paths` entry, named.
    PathEntry(String),
    /// Anything deeper: only booleans are translated.
    Inner,
}

impl Place {
    fn filtered(&self) -> Option<Where> {
        match self {
            Place::Top => Some(Where::Global),
            Place::PathDefaults => Some(Where::PathDefaults),
            Place::PathEntry(name) => Some(Where::Path(name.clone())),
            Place::PathsMap | Place::Inner => None,
        }
    }
}

/// Deserializes `T` (a [`super::Config`]) from `de` with MediaMTX's keys taken aside.
pub(super) fn deserialize<'de, T, D>(de: D) -> Result<(T, Kept), D::Error>
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    let kept = RefCell::new(Kept::default());
    let value = T::deserialize(Compat {
        de,
        place: Place::Top,
        kept: &kept,
    })?;
    Ok((value, kept.into_inner()))
}

/// Deserializes one path entry (`T`, a [`super::PathFields`]) from `de`, as an API body, with
/// MediaMTX's path keys taken aside.
pub(super) fn deserialize_path_entry<'de, T, D>(
    de: D,
) -> Result<(T, BTreeMap<String, Value>), D::Error>
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    let kept = RefCell::new(Kept::default());
    let value = T::deserialize(Compat {
        de,
        place: Place::PathEntry(String::new()),
        kept: &kept,
    })?;
    let fields = kept.into_inner().paths.remove("").unwrap_or_default();
    Ok((value, fields))
}

struct Compat<'k, D> {
    de: D,
    place: Place,
    kept: &'k RefCell<Kept>,
}

impl<'k, D> Compat<'k, D> {
    /// The inner deserializer, and `visitor` wrapped to carry this place (and a struct's own
    /// keys) down to what it visits.
    fn wrap<V>(self, visitor: V, fields: Option<&'static [&'static str]>) -> (D, Wrap<'k, V>) {
        let wrapped = Wrap {
            visitor,
            place: self.place,
            kept: self.kept,
            fields,
        };
        (self.de, wrapped)
    }
}

macro_rules! forward_plain {
    ($($method:ident),*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                self.de.$method(visitor)
            }
        )*
    };
}

macro_rules! forward_wrapped {
    ($($method:ident),*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
                let (de, wrapped) = self.wrap(visitor, None);
                de.$method(wrapped)
            }
        )*
    };
}

impl<'de, 'k, D: Deserializer<'de>> Deserializer<'de> for Compat<'k, D> {
    type Error = D::Error;

    forward_plain!(
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any
    );
    forward_wrapped!(
        deserialize_any,
        deserialize_option,
        deserialize_seq,
        deserialize_map
    );

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.de.deserialize_any(Yaml11Bool(visitor))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.de.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let (de, wrapped) = self.wrap(visitor, None);
        de.deserialize_newtype_struct(name, wrapped)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let (de, wrapped) = self.wrap(visitor, None);
        de.deserialize_tuple(len, wrapped)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let (de, wrapped) = self.wrap(visitor, None);
        de.deserialize_tuple_struct(name, len, wrapped)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let (de, wrapped) = self.wrap(visitor, Some(fields));
        de.deserialize_struct(name, fields, wrapped)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        // Enumerations here are plain names (`logLevel: info`); nothing inside to translate.
        self.de.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// Reads a boolean the YAML 1.1 way and hands it to the wrapped visitor.
struct Yaml11Bool<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Yaml11Bool<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a boolean (true/false, yes/no, on/off)")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<V::Value, E> {
        self.0.visit_bool(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        match mediamtx::yaml11_bool(v) {
            Some(b) => self.0.visit_bool(b),
            None => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

/// A visitor whose maps, sequences and optional values keep going through [`Compat`].
struct Wrap<'k, V> {
    visitor: V,
    place: Place,
    kept: &'k RefCell<Kept>,
    /// The target struct's own keys, when it is a struct.
    fields: Option<&'static [&'static str]>,
}

macro_rules! visit_plain {
    ($($method:ident($ty:ty)),*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Vs::Value, E> {
                self.visitor.$method(v)
            }
        )*
    };
}

impl<'de, 'k, Vs: Visitor<'de>> Visitor<'de> for Wrap<'k, Vs> {
    type Value = Vs::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    visit_plain!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_byte_buf(Vec<u8>)
    );

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Vs::Value, E> {
        self.visitor.visit_borrowed_str(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Vs::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vs::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Vs::Value, D::Error> {
        self.visitor.visit_some(Compat {
            de,
            place: self.place,
            kept: self.kept,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<Vs::Value, D::Error> {
        self.visitor.visit_newtype_struct(Compat {
            de,
            place: self.place,
            kept: self.kept,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vs::Value, A::Error> {
        self.visitor.visit_seq(CompatSeq {
            seq,
            kept: self.kept,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vs::Value, A::Error> {
        self.visitor.visit_map(CompatMap {
            map,
            place: self.place,
            kept: self.kept,
            fields: self.fields.unwrap_or(&[]),
            value_place: Place::Inner,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Vs::Value, A::Error> {
        self.visitor.visit_enum(data)
    }
}

struct CompatSeq<'k, A> {
    seq: A,
    kept: &'k RefCell<Kept>,
}

impl<'de, 'k, A: SeqAccess<'de>> SeqAccess<'de> for CompatSeq<'k, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.seq.next_element_seed(Seed {
            seed,
            place: Place::Inner,
            kept: self.kept,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// Deserializes a value through [`Compat`] at `place`.
struct Seed<'k, S> {
    seed: S,
    place: Place,
    kept: &'k RefCell<Kept>,
}

impl<'de, 'k, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'k, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Compat {
            de,
            place: self.place,
            kept: self.kept,
        })
    }
}

struct CompatMap<'k, A> {
    map: A,
    place: Place,
    kept: &'k RefCell<Kept>,
    fields: &'static [&'static str],
    /// Where the value after the key just read sits.
    value_place: Place,
}

/// What a key of a filtered map turned out to be.
enum KeyClass {
    /// The target struct's own key.
    Own(String),
    /// A MediaMTX key Corestream does not have.
    MediaMtx(String, Kind),
}

/// Reads a key of a filtered map and classifies it; an unknown key fails here, inside the key's
/// own deserialization, so the error carries the key's position.
struct ClassifyKey {
    level: Level,
    fields: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for ClassifyKey {
    type Value = KeyClass;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<KeyClass, D::Error> {
        de.deserialize_str(self)
    }
}

impl Visitor<'_> for ClassifyKey {
    type Value = KeyClass;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a configuration key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<KeyClass, E> {
        if self.fields.contains(&key) {
            return Ok(KeyClass::Own(key.to_owned()));
        }
        match mediamtx::kind_of(self.level, key) {
            Some(kind) => Ok(KeyClass::MediaMtx(key.to_owned(), kind)),
            None => Err(E::unknown_field(key, self.fields)),
        }
    }
}

impl<'de, 'k, A: MapAccess<'de>> MapAccess<'de> for CompatMap<'k, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(at) = self.place.filtered() else {
            if self.place == Place::PathsMap {
                // The key names the entry its value configures.
                let Some(name) = self.map.next_key::<String>()? else {
                    return Ok(None);
                };
                self.value_place = Place::PathEntry(name.clone());
                return seed.deserialize(name.into_deserializer()).map(Some);
            }
            self.value_place = Place::Inner;
            return self.map.next_key_seed(seed);
        };
        loop {
            let class = self.map.next_key_seed(ClassifyKey {
                level: at.level(),
                fields: self.fields,
            })?;
            match class {
                None => return Ok(None),
                Some(KeyClass::Own(key)) => {
                    self.value_place = match (&self.place, key.as_str()) {
                        (Place::Top, "paths") => Place::PathsMap,
                        (Place::Top, "pathDefaults") => Place::PathDefaults,
                        _ => Place::Inner,
                    };
                    self.kept.borrow_mut().own.push((at.clone(), key.clone()));
                    return seed.deserialize(key.into_deserializer()).map(Some);
                }
                Some(KeyClass::MediaMtx(key, kind)) => {
                    let value = self.map.next_value_seed(KeptValue { kind })?;
                    let mut kept = self.kept.borrow_mut();
                    let map = match &at {
                        Where::Global => &mut kept.global,
                        Where::PathDefaults => &mut kept.path_defaults,
                        Where::Path(name) => kept.paths.entry(name.clone()).or_default(),
                    };
                    map.insert(key, value);
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let place = std::mem::replace(&mut self.value_place, Place::Inner);
        self.map.next_value_seed(Seed {
            seed,
            place,
            kept: self.kept,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A kept value, checked against its kind inside its own deserialization (so a bad value is
/// reported at its position).
struct KeptValue {
    kind: Kind,
}

impl<'de> DeserializeSeed<'de> for KeptValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        match self.kind {
            Kind::Any => Value::deserialize(de),
            _ => de.deserialize_any(self),
        }
    }
}

impl KeptValue {
    fn check<E: de::Error>(&self, value: Value) -> Result<Value, E> {
        mediamtx::normalize(self.kind, value).map_err(E::custom)
    }
}

/// Scalars are checked inside the visitor, so serde_yaml_ng puts the value's position on the
/// error.
impl<'de> Visitor<'de> for KeptValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.check(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.check(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.check(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.check(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.check(Value::String(v.to_owned()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

/// The keys the derived `Deserialize` of struct `T` knows (serde's `FIELDS`), found by asking
/// it to deserialize from a probe that only answers `deserialize_struct`.
pub(super) fn struct_fields<T: de::DeserializeOwned>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Probe(&'static [&'static str]);
    impl fmt::Display for Probe {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("probe")
        }
    }
    impl std::error::Error for Probe {}
    impl de::Error for Probe {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Probe(&[])
        }
    }
    struct Prober;
    impl<'de> Deserializer<'de> for Prober {
        type Error = Probe;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probe> {
            Err(Probe(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Probe> {
            Err(Probe(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Prober) {
        Err(Probe(fields)) => fields,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, PathFields};
    use super::*;

    #[test]
    fn probes_the_derived_keys() {
        assert!(struct_fields::<Config>().contains(&"rtmpAddress"));
        assert!(struct_fields::<PathFields>().contains(&"sourceOnDemand"));
    }
}
