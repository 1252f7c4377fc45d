//! The structural fingerprint of a typed handle's payload: the serde shape of `T` (field names and order, the
//! types of fields, sequence elements and map entries, enum variants and their contents), traced by driving
//! `T::deserialize` with a deserializer that makes up values and writes down what it was asked for.
//!
//! Two programs that each define `struct Order { id: u64, sym: String }` get the same shape, whatever their
//! crate and module paths; renaming, reordering or retyping a field, or adding one, changes it. Enums are traced
//! variant by variant over several passes (each pass takes the next unexplored variant of every enum it meets),
//! and referenced by name and variant list, so recursion through an enum ends. Types this cannot trace (a
//! `Deserialize` that needs a self-describing format, `#[serde(flatten)]`, validation that refuses the made-up
//! values, a recursive struct) give `None`: such a type is checked by name only.

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Nesting deeper than this is taken for a recursive type (untraceable).
const MAX_DEPTH: usize = 48;
/// Passes over `T` (each explores at least one more enum variant, or tracing ends).
const MAX_PASSES: usize = 256;

/// The shape of `T` as text, or `None` when it cannot be traced (see the module docs).
pub fn shape_of<T: DeserializeOwned>() -> Option<String> {
    let mut enums: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut top = None;
    for _ in 0..MAX_PASSES {
        let mut t = Tracer { out: String::new(), enums: &mut enums, depth: 0, progress: false, exploring: Vec::new() };
        T::deserialize(&mut t).ok()?;
        let (out, progress) = (t.out, t.progress);
        if top.as_ref().is_some_and(|o| *o != out) {
            return None; // the shape of the top level moved between passes: not a plain derive
        }
        top = Some(out);
        if enums.values().all(|v| v.iter().all(Option::is_some)) {
            let mut s = top.take().expect("set above");
            for (name, variants) in &enums {
                let _ = write!(s, ";{name}=");
                for v in variants {
                    let _ = write!(s, "{}|", v.as_deref().unwrap_or("?"));
                }
            }
            return Some(s);
        }
        if !progress {
            return None;
        }
    }
    None
}

#[derive(Debug)]
struct Untraceable(String);

impl std::fmt::Display for Untraceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Untraceable {}

impl de::Error for Untraceable {
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Untraceable(msg.to_string())
    }
}

type R<T> = Result<T, Untraceable>;

struct Tracer<'a> {
    out: String,
    /// Enum (name and variant list) → shape of each variant's content, once explored.
    enums: &'a mut BTreeMap<String, Vec<Option<String>>>,
    depth: usize,
    /// Whether this pass explored a variant not seen before.
    progress: bool,
    /// Enum variants being traced, outermost first.
    exploring: Vec<(String, usize)>,
}

impl Tracer<'_> {
    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Untraceable("nested too deep (a recursive type?)".into()));
        }
        Ok(())
    }

    /// Writes `open`, visits `len` elements (named by `names` for a struct), writes `close`.
    fn items<'de, V: Visitor<'de>>(
        &mut self,
        open: &str,
        len: usize,
        names: Option<&'static [&'static str]>,
        close: char,
        v: V,
    ) -> R<V::Value> {
        self.out.push_str(open);
        let r = v.visit_seq(Items::new(self, len, names));
        self.out.push(close);
        r
    }

    /// Traces one nested value into its own text.
    fn nested<'de, S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<(S::Value, String)> {
        self.enter()?;
        let saved = std::mem::take(&mut self.out);
        let v = seed.deserialize(&mut *self);
        let inner = std::mem::replace(&mut self.out, saved);
        self.depth -= 1;
        Ok((v?, inner))
    }
}

macro_rules! primitive {
    ($($method:ident => $visit:ident($value:expr), $name:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
            self.out.push_str($name);
            v.$visit($value)
        })*
    };
}

impl<'de> de::Deserializer<'de> for &mut Tracer<'_> {
    type Error = Untraceable;

    fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> R<V::Value> {
        Err(Untraceable("needs a self-describing format".into()))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _v: V) -> R<V::Value> {
        Err(Untraceable("ignores a value".into()))
    }

    primitive! {
        deserialize_bool => visit_bool(false), "bool";
        deserialize_i8 => visit_i8(0), "i8";
        deserialize_i16 => visit_i16(0), "i16";
        deserialize_i32 => visit_i32(0), "i32";
        deserialize_i64 => visit_i64(0), "i64";
        deserialize_i128 => visit_i128(0), "i128";
        deserialize_u8 => visit_u8(0), "u8";
        deserialize_u16 => visit_u16(0), "u16";
        deserialize_u32 => visit_u32(0), "u32";
        deserialize_u64 => visit_u64(0), "u64";
        deserialize_u128 => visit_u128(0), "u128";
        deserialize_f32 => visit_f32(0.0), "f32";
        deserialize_f64 => visit_f64(0.0), "f64";
        deserialize_char => visit_char('\0'), "char";
        deserialize_str => visit_borrowed_str(""), "str";
        deserialize_string => visit_string(String::new()), "str";
        deserialize_bytes => visit_borrowed_bytes(&[]), "bytes";
        deserialize_byte_buf => visit_byte_buf(Vec::new()), "bytes";
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        self.out.push_str("()");
        v.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        self.out.push_str("option<");
        self.enter()?;
        let r = v.visit_some(&mut *self);
        self.depth -= 1;
        self.out.push('>');
        r
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> R<V::Value> {
        let _ = write!(self.out, "unit {name}");
        v.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, v: V) -> R<V::Value> {
        let _ = write!(self.out, "newtype {name}(");
        self.enter()?;
        let r = v.visit_newtype_struct(&mut *self);
        self.depth -= 1;
        self.out.push(')');
        r
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        self.items("seq<", 1, None, '>', v)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> R<V::Value> {
        self.items("tuple(", len, None, ')', v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, name: &'static str, len: usize, v: V) -> R<V::Value> {
        self.items(&format!("tuple {name}("), len, None, ')', v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        self.out.push_str("map<");
        let r = v.visit_map(Entries { t: self, left: 1 });
        self.out.push('>');
        r
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> R<V::Value> {
        self.items(&format!("struct {name}{{"), fields.len(), Some(fields), '}', v)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> R<V::Value> {
        if variants.is_empty() {
            return Err(Untraceable(format!("enum {name} has no variants")));
        }
        let key = format!("{name}[{}]", variants.join(","));
        let explored = self.enums.entry(key.clone()).or_insert_with(|| vec![None; variants.len()]);
        // The next unexplored variant not being explored further up (recursion through this enum); else one
        // already explored, which ends the recursion.
        let busy = |i: usize| self.exploring.iter().any(|(k, j)| *k == key && *j == i);
        let index = (0..variants.len())
            .find(|&i| explored[i].is_none() && !busy(i))
            .or_else(|| explored.iter().position(Option::is_some))
            .ok_or_else(|| Untraceable(format!("enum {name}: every variant recurses")))?;
        self.exploring.push((key.clone(), index));
        let _ = write!(self.out, "enum {key}");
        self.enter()?;
        let saved = std::mem::take(&mut self.out);
        let r = v.visit_enum(Variant { t: &mut *self, index: index as u32 });
        let content = std::mem::replace(&mut self.out, saved);
        self.depth -= 1;
        self.exploring.pop();
        let slot = &mut self.enums.get_mut(&key).expect("inserted above")[index];
        if slot.is_none() {
            *slot = Some(format!("{}:{content}", variants[index]));
            self.progress = true;
        }
        r
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> R<V::Value> {
        Err(de::Error::invalid_type(de::Unexpected::Other("an identifier outside an enum"), &v))
    }
}

/// The elements of a sequence, tuple or struct (with field names).
struct Items<'a, 'b> {
    t: &'a mut Tracer<'b>,
    left: usize,
    names: Option<&'static [&'static str]>,
}

impl<'a, 'b> Items<'a, 'b> {
    fn new(t: &'a mut Tracer<'b>, len: usize, names: Option<&'static [&'static str]>) -> Self {
        Items { t, left: len, names }
    }
}

impl<'de> de::SeqAccess<'de> for Items<'_, '_> {
    type Error = Untraceable;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<Option<S::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let (v, inner) = self.t.nested(seed)?;
        match self.names.and_then(|n| n.split_first()) {
            Some((name, rest)) => {
                self.names = Some(rest);
                let _ = write!(self.t.out, "{name}:{inner},");
            }
            None => {
                let _ = write!(self.t.out, "{inner},");
            }
        }
        Ok(Some(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// One entry of a map.
struct Entries<'a, 'b> {
    t: &'a mut Tracer<'b>,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Entries<'_, '_> {
    type Error = Untraceable;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> R<Option<K::Value>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let (k, inner) = self.t.nested(seed)?;
        let _ = write!(self.t.out, "{inner}=>");
        Ok(Some(k))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> R<S::Value> {
        let (v, inner) = self.t.nested(seed)?;
        self.t.out.push_str(&inner);
        Ok(v)
    }
}

/// The variant a pass explores.
struct Variant<'a, 'b> {
    t: &'a mut Tracer<'b>,
    index: u32,
}

impl<'de, 'a, 'b> de::EnumAccess<'de> for Variant<'a, 'b> {
    type Error = Untraceable;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> R<(S::Value, Self)> {
        let key = seed.deserialize(self.index.into_deserializer())?;
        Ok((key, self))
    }
}

impl<'de> de::VariantAccess<'de> for Variant<'_, '_> {
    type Error = Untraceable;

    fn unit_variant(self) -> R<()> {
        self.t.out.push_str("()");
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> R<S::Value> {
        let (v, inner) = self.t.nested(seed)?;
        self.t.out.push_str(&inner);
        Ok(v)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> R<V::Value> {
        de::Deserializer::deserialize_tuple(&mut *self.t, len, v)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], v: V) -> R<V::Value> {
        self.t.items("{", fields.len(), Some(fields), '}', v)
    }
}

#[cfg(test)]
mod tests {
    use super::shape_of;
    use serde::Deserialize;
    use std::collections::HashMap;

    mod a {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Order {
            pub id: u64,
            pub sym: String,
            pub qty: i32,
        }
    }
    mod b {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Order {
            pub id: u64,
            pub sym: String,
            pub qty: i32,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Wider {
            pub id: u64,
            pub sym: String,
            pub qty: i64,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub struct Reordered {
            pub sym: String,
            pub id: u64,
            pub qty: i32,
        }
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Side {
        Buy,
        Sell(u8),
        Cross { px: f64, legs: Vec<Leg> },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Leg {
        side: Option<Box<Side>>,
        tags: HashMap<String, u32>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Rec {
        next: Option<Box<Rec>>,
    }

    #[test]
    fn same_struct_two_places_same_shape_and_changes_are_seen() {
        let (x, y) = (shape_of::<a::Order>().unwrap(), shape_of::<b::Order>().unwrap());
        assert_eq!(x, y);
        assert_eq!(x, "struct Order{id:u64,sym:str,qty:i32,}");
        assert_ne!(shape_of::<b::Wider>(), Some(x.clone()), "a retyped field");
        assert_ne!(shape_of::<b::Reordered>(), Some(x), "reordered fields");
    }

    #[test]
    fn enums_are_explored_variant_by_variant_and_recursion_through_them_ends() {
        let s = shape_of::<Side>().expect("traceable");
        assert!(s.contains("Buy:()") && s.contains("Sell:u8") && s.contains("Cross:{px:f64,legs:"), "{s}");
        assert!(s.contains("tags:map<str=>u32>"), "{s}");
        assert_eq!(shape_of::<Side>(), Some(s), "deterministic");
        assert_eq!(shape_of::<Vec<(u8, String)>>().as_deref(), Some("seq<tuple(u8,str,),>"));
    }

    #[test]
    fn untraceable_types_say_so() {
        assert_eq!(shape_of::<Rec>(), None, "a recursive struct");
        assert_eq!(shape_of::<std::num::NonZeroU32>(), None, "validation refuses the made-up 0");
    }
}
