//! `cmd_echo`: a plain WASI command, no SDK. Reads the params JSON from stdin,
//! writes a log line, then the params as its last stdout line (the result).
use std::io::Read;

fn main() {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("cmd_echo: cannot read stdin: {e}");
        std::process::exit(1);
    }
    println!("cmd_echo: read {} bytes from stdin", input.len());
    // The result must be one line: the host sends compact JSON, keep it so.
    println!("{}", input.trim());
}
