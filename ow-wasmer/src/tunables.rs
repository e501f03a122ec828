//! Limits in wasmer's tunables: every memory's and table's maximum clamped,
//! and the stack size of the coroutine each call runs on.

use std::ptr::NonNull;
use wasmer::sys::vm::{VMConfig, VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryError, MemoryStyle, MemoryType, Pages, TableStyle, TableType};

/// [`BaseTunables`] that never let a linear memory grow past `max` nor a
/// table past `max_table` (`memory.grow`/`table.grow` then return -1, as on
/// the other engines), running wasm on stacks of `vmconfig`'s size.
pub(crate) struct CappedTunables {
    pub(crate) base: BaseTunables,
    pub(crate) max: Pages,
    pub(crate) max_table: u32,
    pub(crate) vmconfig: VMConfig,
}

impl CappedTunables {
    fn clamp_table(&self, ty: &TableType) -> Result<TableType, String> {
        if ty.minimum > self.max_table {
            return Err(format!(
                "a table of {} elements exceeds the limit of {}",
                ty.minimum, self.max_table
            ));
        }
        let mut capped = *ty;
        capped.maximum = Some(ty.maximum.map_or(self.max_table, |m| m.min(self.max_table)));
        Ok(capped)
    }

    fn clamp(&self, ty: &MemoryType) -> Result<MemoryType, MemoryError> {
        if ty.minimum > self.max {
            return Err(MemoryError::MinimumMemoryTooLarge {
                min_requested: ty.minimum,
                max_allowed: self.max,
            });
        }
        let mut capped = *ty;
        capped.maximum = Some(ty.maximum.map_or(self.max, |m| m.min(self.max)));
        Ok(capped)
    }
}

impl Tunables for CappedTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        self.base.memory_style(memory)
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
    ) -> Result<VMMemory, MemoryError> {
        self.base.create_host_memory(&self.clamp(ty)?, style)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        let ty = self.clamp(ty)?;
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe {
            self.base
                .create_vm_memory(&ty, style, vm_definition_location)
        }
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(&self.clamp_table(ty)?, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        let ty = self.clamp_table(ty)?;
        // SAFETY: forwarded with a smaller maximum; the caller upholds the contract.
        unsafe {
            self.base
                .create_vm_table(&ty, style, vm_definition_location)
        }
    }

    fn vmconfig(&self) -> &VMConfig {
        &self.vmconfig
    }
}
