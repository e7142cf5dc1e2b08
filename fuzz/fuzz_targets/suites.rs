//! Suite files, any text at all: the conformance, YAML and assembly parsers give a case or an
//! error, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use runner::cases::{conformance, matrix, yaml, AgentSuite, CCompiler};

/// No compiler: a fuzzed case's C file is an error of the case, never a clang run.
struct NoCompiler;

impl CCompiler for NoCompiler {
    fn compile(&self, _: &Path, _: bool, _: &Path) -> Result<(), String> {
        Err("no C compiler in the fuzz target".to_owned())
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = runner::bpf::asm::assemble(&text);
    let _ = conformance::parse(Path::new("fuzz.data"), &text, "fuzz");
    let _ = matrix::parse(Path::new("fuzz.yaml"), &text);
    for suite in [AgentSuite::Verifier, AgentSuite::Xdp] {
        for big_endian in [false, true] {
            let _ = yaml::parse(Path::new("fuzz.yaml"), &text, suite, big_endian, &NoCompiler);
        }
    }
});
