//! How figures are written on every surface that prints JSON (the server's reports, the device
//! CLI): a computed `125119.15000000001` is written `125119.15`. Six decimals keep coordinates
//! to about 0.1 m and money to a millionth; anything finer is floating-point noise, not data.

use serde::Serialize;
use serde_json::Value;

/// Decimals kept in printed figures.
pub const DECIMALS: i32 = 6;

/// `value` as JSON with every number rounded to [`DECIMALS`] decimals (integers untouched).
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Value> {
    let mut v = serde_json::to_value(value)?;
    round(&mut v);
    Ok(v)
}

/// Rounds every floating-point number inside `v` to [`DECIMALS`] decimals, in place.
pub fn round(v: &mut Value) {
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            if let Some(x) = n.as_f64() {
                let scale = 10f64.powi(DECIMALS);
                let r = (x * scale).round() / scale;
                // Out of range for the scaling (|x| > ~9e9 with six decimals): already coarse.
                let r = if r.is_finite() { r } else { x };
                // -0.0 (a sum of nothing negated, a tiny negative rounded) reads as a bug: 0.
                let r = if r == 0.0 { 0.0 } else { r };
                if let Some(m) = serde_json::Number::from_f64(r) {
                    *n = m;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(round),
        Value::Object(fields) => fields.values_mut().for_each(round),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computed_noise_is_rounded_away_and_real_precision_kept() {
        let v = to_json(&serde_json::json!({
            "score": 125119.15000000001,
            "share": 0.1 + 0.2,
            "lat": 45.764043,
            "count": 3,
            "nested": [{ "m": 2.0000000000000004 }],
            "big": 1.0e300,
            "tiny": 1.0e-12,
            "negative_zero": -0.0,
            "negative_tiny": -1.0e-12,
        }))
        .expect("json");
        assert_eq!(
            v.to_string(),
            r#"{"big":1e+300,"count":3,"lat":45.764043,"negative_tiny":0.0,"negative_zero":0.0,"nested":[{"m":2.0}],"score":125119.15,"share":0.3,"tiny":0.0}"#
        );
    }
}
