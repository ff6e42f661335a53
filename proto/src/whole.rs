//! Whole numbers as JSON Schema counts them: `5` and `5.0` alike. A client whose serialiser
//! writes every number with a fraction (Python's floats, a spreadsheet's numbers, a fuzzer)
//! sends `5.0` for an integer field its schema says `"type": "integer"`; the contract's
//! integer fields take it, as the execution's integer parameters do. A fraction is refused,
//! and so is a float beyond 2^53, which need not be the integer its sender wrote.
//!
//! For `#[serde(default, deserialize_with = "aic_proto::whole::option")]` and the like.

use serde::de::{Deserialize, Deserializer, Error, Unexpected};
use serde_json::Number;

/// The largest magnitude up to which every whole float is exactly the integer it writes.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// `n` when it is a whole number, written as one (`5.0` becomes `5`).
pub fn number(n: &Number) -> Option<Number> {
    if n.is_i64() || n.is_u64() {
        return Some(n.clone());
    }
    let f = n.as_f64()?;
    // `as` is exact here: `f` is whole and within ±2^53.
    (f.fract() == 0.0 && f.abs() <= EXACT).then(|| Number::from(f as i64))
}

/// `a` against `b`: exactly when both are integers, as floats otherwise.
pub fn cmp(a: &Number, b: &Number) -> std::cmp::Ordering {
    let int = |n: &Number| (n.as_i64().map(i128::from)).or_else(|| n.as_u64().map(i128::from));
    match (int(a), int(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => (a.as_f64().unwrap_or(f64::NAN)).total_cmp(&b.as_f64().unwrap_or(f64::NAN)),
    }
}

/// An integer of type `T` written as any JSON number without a fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole<T>(pub T);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Deserialize<'de> for Whole<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = Number::deserialize(d)?;
        let Some(whole) = number(&n) else {
            let f = n.as_f64().unwrap_or(f64::NAN);
            return Err(D::Error::invalid_value(
                Unexpected::Float(f),
                &"a whole number",
            ));
        };
        let out_of_range = |unexpected| {
            D::Error::invalid_value(unexpected, &"a whole number within the field's range")
        };
        match (whole.as_i64(), whole.as_u64()) {
            (Some(i), _) => T::try_from(i).map_err(|_| out_of_range(Unexpected::Signed(i))),
            (None, Some(u)) => T::try_from(u).map_err(|_| out_of_range(Unexpected::Unsigned(u))),
            (None, None) => Err(out_of_range(Unexpected::Other("a number"))),
        }
        .map(Whole)
    }
}

/// An optional integer field (with `#[serde(default)]`).
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Option::<Whole<T>>::deserialize(d).map(|o| o.map(|w| w.0))
}

/// A list of integers.
pub fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Vec::<Whole<T>>::deserialize(d).map(|v| v.into_iter().map(|w| w.0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Input {
        #[serde(default, deserialize_with = "option")]
        wait_ms: Option<u64>,
        #[serde(default, deserialize_with = "list")]
        numbers: Vec<i32>,
    }

    fn read(json: &str) -> Result<Input, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_whole_number_with_a_fraction_is_taken() {
        let i = read(r#"{"wait_ms": 3487.0, "numbers": [1, 2.0, -3.0]}"#).expect("whole");
        assert_eq!((i.wait_ms, i.numbers), (Some(3487), vec![1, 2, -3]));
        let i = read("{}").expect("absent");
        assert_eq!((i.wait_ms, i.numbers), (None, vec![]));
        assert_eq!(read(r#"{"wait_ms": null}"#).expect("null").wait_ms, None);
    }

    #[test]
    fn a_fraction_a_wrong_type_or_an_integer_out_of_range_is_refused() {
        for (json, says) in [
            (
                r#"{"wait_ms": 5.5}"#,
                "invalid value: floating point `5.5`, expected a whole number",
            ),
            (
                r#"{"wait_ms": 1e300}"#,
                "floating point `1e+300`, expected a whole number",
            ),
            (
                r#"{"wait_ms": -1}"#,
                "invalid value: integer `-1`, expected a whole number within the field's range",
            ),
            (
                r#"{"numbers": [3000000000]}"#,
                "integer `3000000000`, expected a whole number within the field's range",
            ),
            (r#"{"wait_ms": "5"}"#, "invalid type: string \"5\""),
        ] {
            let e = read(json).expect_err(json);
            assert!(e.contains(says), "{json}: {e}");
        }
    }
}
