//! The host side of the ABI against a guest that returns anything: bounds
//! checks on every pointer, result decoding, command stdout splitting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ow_common::Error;
use ow_common::abi::{self, SdkInstance};

/// A guest whose memory and return values come from the fuzzer.
struct Guest {
    memory: Vec<u8>,
    alloc_at: u32,
    returns: i64,
}

impl SdkInstance for Guest {
    type Error = Error;
    fn alloc(&mut self, _len: u32) -> Result<u32, Error> {
        Ok(self.alloc_at)
    }
    fn call_entry(&mut self, _ptr: u32, _len: u32) -> Result<i64, Error> {
        Ok(self.returns)
    }
    fn memory_size(&mut self) -> usize {
        self.memory.len()
    }
    fn write(&mut self, offset: usize, bytes: &[u8]) -> Result<(), Error> {
        // call_sdk checked the range: indexing must not panic.
        self.memory[offset..offset + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
    fn read(&mut self, range: std::ops::Range<usize>) -> Result<Vec<u8>, Error> {
        Ok(self.memory[range].to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let alloc_at = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let returns = i64::from_le_bytes(data[4..12].try_into().unwrap());
    let memory = data[12..].to_vec();
    let mut guest = Guest {
        memory,
        alloc_at,
        returns,
    };
    if let Ok(result) = abi::call_sdk(&mut guest, b"{}", 1 << 20) {
        let _ = abi::decode_result(result, 1 << 20);
    }
    let _ = abi::decode_result(data[12..].to_vec(), 64);
    let (result, log) = abi::command_result(data[12..].to_vec(), 1 << 20);
    assert!(log.len() <= data.len() - 12);
    let _ = result;
});
