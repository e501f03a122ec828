//! `map_reduce`: fan-out, then fan-in. `{"mapper": name, "items": [x, ...]}`
//! starts one call of the mapper per item with `{"value": x}`, all before
//! awaiting any (`call::call_all`), then sums the `value` fields of the
//! results -> `{"sum": s, "results": [result, ...]}` (results in item
//! order). The sum is an integer while every value is one and it fits an
//! `i64`, a float otherwise. A call that fails, or a `value` that is not a
//! number, fails the whole job: `{"error": "item <i>: ..."}`.
use ow_wasm_action::{Value, call, json};

/// A running sum: exact over integers, a float once it cannot be.
enum Sum {
    Int(i64),
    Float(f64),
}

impl Sum {
    fn add(self, value: &Value) -> Option<Sum> {
        if let (Sum::Int(sum), Some(n)) = (&self, value.as_i64())
            && let Some(sum) = sum.checked_add(n)
        {
            return Some(Sum::Int(sum));
        }
        let sum = match self {
            Sum::Int(sum) => sum as f64,
            Sum::Float(sum) => sum,
        };
        Some(Sum::Float(sum + value.as_f64()?))
    }

    fn into_json(self) -> Value {
        match self {
            Sum::Int(sum) => json!(sum),
            Sum::Float(sum) => json!(sum),
        }
    }
}

fn map_reduce(params: Value) -> Result<Value, String> {
    let mapper = params["mapper"]
        .as_str()
        .ok_or("missing string parameter `mapper`")?;
    let items = params["items"]
        .as_array()
        .ok_or("missing array parameter `items`")?;
    let calls: Vec<_> = items
        .iter()
        .map(|item| (mapper, json!({ "value": item })))
        .collect();
    let mut sum = Sum::Int(0);
    let mut results = Vec::with_capacity(items.len());
    for (i, result) in call::call_all(&calls).into_iter().enumerate() {
        let result = result.map_err(|e| format!("item {i}: {e}"))?;
        sum = sum
            .add(&result["value"])
            .ok_or_else(|| format!("item {i}: the mapper's `value` is not a number"))?;
        results.push(result);
    }
    Ok(json!({ "sum": sum.into_json(), "results": results }))
}

ow_wasm_action::export!(map_reduce);
