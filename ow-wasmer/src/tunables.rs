//! Memory cap: wasmer's base tunables with every memory's maximum clamped.

use std::ptr::NonNull;
use wasmer::sys::vm::{VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryError, MemoryStyle, MemoryType, Pages, TableStyle, TableType};

/// [`BaseTunables`] that never let a linear memory grow past `max`
/// (`memory.grow` then returns -1, as on the other engines).
pub(crate) struct CappedTunables {
    pub(crate) base: BaseTunables,
    pub(crate) max: Pages,
}

impl CappedTunables {
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
        self.base.create_host_table(ty, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { self.base.create_vm_table(ty, style, vm_definition_location) }
    }
}
