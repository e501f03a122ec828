//! WAMR has no run-time setting for table sizes: a table without a declared
//! maximum may grow to a compile-time constant. To hold `table.grow` to
//! [`ow_common::Limits::max_table_elements`] as the other engines do, the
//! module's table types are rewritten, at /init, with that maximum.

use ow_common::{Error, Result};
use std::borrow::Cow;
use std::convert::Infallible;
use wasm_encoder::reencode::{Reencode, utils};
use wasmparser::{Parser, Payload};

/// `wasm` with every defined table's maximum at most `max` elements;
/// borrowed unchanged when no table could grow past it.
pub(crate) fn cap_tables(wasm: &[u8], max: u32) -> Result<Cow<'_, [u8]>> {
    if !needs_cap(wasm, u64::from(max)) {
        return Ok(Cow::Borrowed(wasm));
    }
    let mut module = wasm_encoder::Module::new();
    CapTables(u64::from(max))
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| Error::InvalidModule(format!("cannot cap the module's tables: {e}")))?;
    Ok(Cow::Owned(module.finish()))
}

/// Whether a table the module defines may grow past `max`.
fn needs_cap(wasm: &[u8], max: u64) -> bool {
    Parser::new(0).parse_all(wasm).any(|payload| match payload {
        Ok(Payload::TableSection(tables)) => tables
            .into_iter()
            .flatten()
            .any(|t| t.ty.maximum.is_none_or(|m| m > max)),
        _ => false,
    })
}

struct CapTables(u64);

impl Reencode for CapTables {
    type Error = Infallible;

    fn table_type(
        &mut self,
        table_ty: wasmparser::TableType,
    ) -> std::result::Result<wasm_encoder::TableType, wasm_encoder::reencode::Error<Infallible>>
    {
        let mut ty = utils::table_type(self, table_ty)?;
        let max = ty.maximum.map_or(self.0, |m| m.min(self.0));
        // A minimum above the limit is refused earlier (`abi::check_tables`).
        ty.maximum = Some(max.max(ty.minimum));
        Ok(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_max(wasm: &[u8]) -> Option<u64> {
        Parser::new(0).parse_all(wasm).find_map(|p| match p {
            Ok(Payload::TableSection(t)) => t.into_iter().next().unwrap().unwrap().ty.maximum,
            _ => None,
        })
    }

    #[test]
    fn unbounded_tables_get_the_limit_and_bounded_ones_stay_as_they_are() {
        let open = wat::parse_str("(module (table 10 funcref) (func))").unwrap();
        let capped = cap_tables(&open, 100).unwrap();
        assert_eq!(table_max(&capped), Some(100));
        wasmparser::Validator::new().validate_all(&capped).unwrap();
        let closed = wat::parse_str("(module (table 10 20 funcref))").unwrap();
        assert!(matches!(
            cap_tables(&closed, 100).unwrap(),
            Cow::Borrowed(_)
        ));
    }
}
