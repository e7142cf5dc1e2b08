//! An assembler for the uBPF dialect that bpf_conformance uses (see suites/README.md).
//!
//! Assembly gives a [`Program`]: instructions whose jump and call targets are kept as item
//! indices, so that the harness can wrap a program in a prologue and an epilogue before
//! [`Program::encode`] computes the final offsets.

use std::collections::{BTreeMap, HashMap};

use super::insn::*;

/// A mistake in a program's text, with its position (1-based) in that text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct AsmError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Where a jump or call goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// An item index.
    Item(usize),
    /// A label, resolved at the end of assembly.
    Label(String),
    /// A slot offset as written (`+N`), resolved at the end of assembly.
    Relative(i64),
}

/// One instruction of a program; `lddw` is one item of two slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub insn: Insn,
    /// The upper 32 bits of an `lddw`.
    pub high: i32,
    target: Option<Target>,
    /// The map an `lddw %rN, map:NAME` refers to.
    pub map: Option<String>,
    /// Source position (line, column), for messages; 0 for generated items.
    pub line: usize,
    pub column: usize,
    /// Written as `.insn`: one slot as given, even with the opcode of a `lddw`.
    raw: bool,
}

impl Item {
    pub fn new(insn: Insn) -> Item {
        Item {
            insn,
            high: 0,
            target: None,
            map: None,
            line: 0,
            column: 0,
            raw: false,
        }
    }

    /// A jump or call to item `index`.
    pub fn to(insn: Insn, index: usize) -> Item {
        Item {
            target: Some(Target::Item(index)),
            ..Item::new(insn)
        }
    }

    fn slots(&self) -> usize {
        if self.is_lddw() {
            2
        } else {
            1
        }
    }

    /// Whether this is a `lddw`, two slots.
    pub fn is_lddw(&self) -> bool {
        self.insn.is_lddw() && !self.raw
    }

    /// Whether this is a `call local`.
    pub fn is_local_call(&self) -> bool {
        self.insn.code == JMP | CALL && self.insn.src == PSEUDO_CALL && !self.raw
    }

    /// Whether this is a `lddw dst, code_addr(TARGET)`: the address of a BPF function.
    pub fn is_code_addr(&self) -> bool {
        self.is_lddw() && self.insn.src == LDDW_CODE_ADDR
    }

    /// Whether this names a BPF function of the program: a `call local` or a `code_addr`.
    pub fn refers_to_function(&self) -> bool {
        self.is_local_call() || self.is_code_addr()
    }

    pub fn is_exit(&self) -> bool {
        self.insn.code == JMP | EXIT && !self.raw
    }

    /// The item this jumps or calls to.
    pub fn target(&self) -> Option<usize> {
        match self.target {
            Some(Target::Item(i)) => Some(i),
            _ => None,
        }
    }

    pub fn set_target(&mut self, index: usize) {
        self.target = Some(Target::Item(index));
    }
}

/// An assembled program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    pub items: Vec<Item>,
    /// Each label's item index.
    pub labels: BTreeMap<String, usize>,
}

impl Program {
    /// Index of the first item of the first BPF-to-BPF function (the target of a `call
    /// local` or a `code_addr`): the main program ends there.
    pub fn main_len(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.refers_to_function())
            .filter_map(Item::target)
            .min()
            .unwrap_or(self.items.len())
    }

    /// The instruction slots, with jump offsets and call immediates computed. Map references
    /// keep `imm` 0; [`Program::map_refs`] says which slots name which map.
    pub fn encode(&self) -> Result<Vec<Insn>, String> {
        let mut slot_of = Vec::with_capacity(self.items.len() + 1);
        let mut slot = 0usize;
        for item in &self.items {
            slot_of.push(slot);
            slot += item.slots();
        }
        slot_of.push(slot);
        let mut out = Vec::with_capacity(slot);
        for (index, item) in self.items.iter().enumerate() {
            let mut insn = item.insn;
            if let Some(target) = item.target() {
                let to = *slot_of.get(target).ok_or("jump past the end")? as i64;
                let delta = to - (slot_of[index] as i64 + 1);
                // Calls, function addresses and the v4 long jump (`ja32`) keep their offset
                // in the immediate.
                if item.refers_to_function() || insn.code == JMP32 | JA {
                    insn.imm = i32::try_from(delta).map_err(|_| "call too far")?;
                } else {
                    insn.off = i16::try_from(delta).map_err(|_| {
                        format!(
                            "jump at line {} spans {delta} slots, beyond a 16-bit offset",
                            item.line
                        )
                    })?;
                }
            }
            out.push(insn);
            if item.is_lddw() {
                out.push(Insn {
                    imm: item.high,
                    ..Insn::default()
                });
            }
        }
        Ok(out)
    }

    /// `(slot, map name)` of every map reference, in slot order.
    pub fn map_refs(&self) -> Vec<(usize, &str)> {
        let mut slot = 0;
        let mut refs = Vec::new();
        for item in &self.items {
            if let Some(map) = &item.map {
                refs.push((slot, map.as_str()));
            }
            slot += item.slots();
        }
        refs
    }
}

/// Assembles `text`.
pub fn assemble(text: &str) -> Result<Program, AsmError> {
    let mut items = Vec::new();
    let mut labels: HashMap<String, (usize, usize)> = HashMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let code = raw.split('#').next().unwrap_or("");
        let trimmed = code.trim();
        if trimmed.is_empty() {
            continue;
        }
        let column = code.len() - code.trim_start().len() + 1;
        if let Some(label) = trimmed.strip_suffix(':') {
            if !is_ident(label) {
                return Err(err(line, column, format!("bad label `{label}`")));
            }
            if labels
                .insert(label.to_owned(), (items.len(), line))
                .is_some()
            {
                return Err(err(line, column, format!("label `{label}` defined twice")));
            }
            continue;
        }
        let mut item = Parser {
            line,
            text: code,
            pos: column - 1,
        }
        .instruction()?;
        item.line = line;
        item.column = column;
        items.push(item);
    }
    resolve(&mut items, &labels)?;
    let labels = labels
        .into_iter()
        .map(|(name, (index, _))| (name, index))
        .collect();
    Ok(Program { items, labels })
}

/// Turns labels and relative offsets into item indices.
fn resolve(items: &mut [Item], labels: &HashMap<String, (usize, usize)>) -> Result<(), AsmError> {
    let mut slot_of = Vec::with_capacity(items.len());
    let mut slot = 0i64;
    for item in items.iter() {
        slot_of.push(slot);
        slot += item.slots() as i64;
    }
    let item_at = |slot: i64| slot_of.binary_search(&slot).ok();
    let end = slot;
    for index in 0..items.len() {
        let (line, column) = (items[index].line, items[index].column);
        let target = match items[index].target.take() {
            None => continue,
            Some(Target::Item(i)) => i,
            Some(Target::Label(label)) => match labels.get(&label) {
                Some(&(i, _)) => i,
                // bpf_conformance's convention: `exit`, unless defined, is the first `exit`.
                None if label == "exit" => match items.iter().position(Item::is_exit) {
                    Some(i) => i,
                    None => return Err(err(line, column, "no label `exit` and no exit".into())),
                },
                None => return Err(err(line, column, format!("no label `{label}`"))),
            },
            Some(Target::Relative(delta)) => {
                let to = slot_of[index] + 1 + delta;
                if to == end {
                    items.len()
                } else {
                    item_at(to).ok_or_else(|| {
                        err(
                            line,
                            column,
                            format!("offset {delta:+} lands outside the program or inside an lddw"),
                        )
                    })?
                }
            }
        };
        items[index].target = Some(Target::Item(target));
    }
    Ok(())
}

fn err(line: usize, column: usize, message: String) -> AsmError {
    AsmError {
        line,
        column,
        message,
    }
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Reads one instruction line.
struct Parser<'a> {
    line: usize,
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn error<T>(&self, message: impl Into<String>) -> Result<T, AsmError> {
        Err(err(self.line, self.pos + 1, message.into()))
    }

    fn skip_space(&mut self) {
        while self.text[self.pos..].starts_with([' ', '\t']) {
            self.pos += 1;
        }
    }

    fn at_end(&mut self) -> bool {
        self.skip_space();
        self.pos >= self.text.trim_end().len()
    }

    /// A word: letters, digits, `_`, `.`, `%`, `-`, `+`, `:` (operands such as `-0x10`,
    /// `map:name`).
    fn word(&mut self) -> &str {
        self.skip_space();
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "_.%-+:".contains(c)))
            .unwrap_or(rest.len());
        self.pos += len;
        &self.text[start..start + len]
    }

    fn expect(&mut self, c: char) -> Result<(), AsmError> {
        self.skip_space();
        if self.text[self.pos..].starts_with(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(format!("expected `{c}`"))
        }
    }

    fn reg(&mut self) -> Result<u8, AsmError> {
        self.reg_up_to(MAX_REG)
    }

    /// A register `r0`..`rMAX`, with or without `%`.
    fn reg_up_to(&mut self, max: u8) -> Result<u8, AsmError> {
        self.skip_space();
        let rest = &self.text[self.pos..];
        let name = rest.strip_prefix('%').unwrap_or(rest);
        let digits = name.strip_prefix('r').map_or(0, |n| {
            n.find(|c: char| !c.is_ascii_digit()).unwrap_or(n.len())
        });
        let number = name.get(1..1 + digits).and_then(|n| n.parse::<u8>().ok());
        let after = name.get(1 + digits..).unwrap_or("");
        match number {
            Some(n) if n <= max && !after.starts_with(|c: char| c.is_ascii_alphanumeric()) => {
                self.pos += rest.len() - after.len();
                Ok(n)
            }
            _ => {
                let at = self.pos;
                let word = self.word().to_owned();
                self.pos = at;
                self.error(format!("expected a register r0..r{max}, found `{word}`"))
            }
        }
    }

    /// What stands at the current position, up to the next comma or space: for messages.
    fn token_here(&self) -> &str {
        let rest = self.text[self.pos..].trim_end();
        let end = rest.find([',', ' ', '\t']).unwrap_or(rest.len());
        if end == 0 {
            "end of line"
        } else {
            &rest[..end]
        }
    }

    fn number(&mut self) -> Result<i128, AsmError> {
        self.skip_space();
        let at = self.pos;
        let found = self.token_here().to_owned();
        let word = self.word().to_owned();
        parse_number(&word).ok_or_else(|| {
            err(
                self.line,
                at + 1,
                format!("expected a number, found `{found}`"),
            )
        })
    }

    /// A 32-bit immediate: any value that fits in 32 bits, signed or unsigned.
    fn imm32(&mut self) -> Result<i32, AsmError> {
        let at = self.pos;
        let n = self.number()?;
        if (i32::MIN as i128..=u32::MAX as i128).contains(&n) {
            Ok(n as i64 as i32)
        } else {
            self.pos = at;
            self.skip_space();
            self.error(format!("{n} does not fit in a 32-bit immediate"))
        }
    }

    /// `[rN+off]` or `[rN-off]` or `[rN]`.
    fn memory(&mut self) -> Result<(u8, i16), AsmError> {
        self.expect('[')?;
        let reg = self.reg()?;
        self.skip_space();
        let off = if self.text[self.pos..].starts_with(']') {
            0
        } else {
            let at = self.pos;
            let n = self.number()?;
            i16::try_from(n).or_else(|_| {
                self.pos = at;
                self.error(format!("offset {n} does not fit in 16 bits"))
            })?
        };
        self.expect(']')?;
        Ok((reg, off))
    }

    /// A register or an immediate, as the source of an ALU or jump.
    fn operand(&mut self) -> Result<Result<u8, i32>, AsmError> {
        self.skip_space();
        let rest = &self.text[self.pos..];
        if rest.starts_with('%')
            || (rest.starts_with('r') && rest[1..].starts_with(|c: char| c.is_ascii_digit()))
        {
            Ok(Ok(self.reg()?))
        } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
            Ok(Err(self.imm32()?))
        } else {
            self.error(format!(
                "expected a register or an immediate, found `{}`",
                self.token_here()
            ))
        }
    }

    fn target(&mut self) -> Result<Target, AsmError> {
        self.skip_space();
        let at = self.pos;
        let word = self.word().to_owned();
        if word.starts_with(['+', '-']) {
            match parse_number(&word) {
                Some(n) => Ok(Target::Relative(n as i64)),
                None => {
                    self.pos = at;
                    self.error(format!("expected a jump offset or label, found `{word}`"))
                }
            }
        } else if is_ident(&word) {
            Ok(Target::Label(word))
        } else {
            self.pos = at;
            self.error(format!("expected a jump offset or label, found `{word}`"))
        }
    }

    fn instruction(&mut self) -> Result<Item, AsmError> {
        let at = self.pos;
        let mnemonic = self.word().to_ascii_lowercase();
        let item = self.body(&mnemonic).or_else(|e| {
            if e.message.is_empty() {
                self.pos = at;
                self.error(format!("unknown instruction `{mnemonic}`"))
            } else {
                Err(e)
            }
        })?;
        if !self.at_end() {
            return self.error(format!("unexpected `{}`", self.text[self.pos..].trim_end()));
        }
        Ok(item)
    }

    fn body(&mut self, m: &str) -> Result<Item, AsmError> {
        if let Some(item) = self.alu(m)? {
            return Ok(item);
        }
        if let Some(item) = self.jump(m)? {
            return Ok(item);
        }
        if let Some(item) = self.load_store(m)? {
            return Ok(item);
        }
        match m {
            "lddw" => self.lddw(),
            "exit" => Ok(Item::new(Insn {
                code: JMP | EXIT,
                ..Insn::default()
            })),
            "call" => self.call(),
            // The kernel's and LLVM's name for `call %rN`.
            "callx" => self.callx(),
            "lock" => self.atomic(),
            ".insn" => self.raw(),
            // An empty message: `instruction` names the mnemonic.
            _ => self.error(""),
        }
    }

    /// The ALU instructions: `OP[32|64] dst, src|imm`, `neg[32|64] dst`, the byte swaps, and
    /// ISA v4's `sdiv`, `smod` (div and mod with offset 1) and `movsx` (mov with the source
    /// width in the offset). `None` if `m` is not one of them.
    fn alu(&mut self, m: &str) -> Result<Option<Item>, AsmError> {
        // Byte swaps carry their width in the name: `le` and `be` in ALU, `bswap` (also
        // spelled `swap`) in ALU64.
        let swaps = [
            ("be", ALU | END | TO_BE),
            ("le", ALU | END),
            ("bswap", ALU64 | END),
            ("swap", ALU64 | END),
        ];
        for (prefix, code) in swaps {
            let imm = match m.strip_prefix(prefix) {
                Some("16") => 16,
                Some("32") => 32,
                Some("64") => 64,
                _ => continue,
            };
            let dst = self.reg()?;
            return Ok(Some(Item::new(Insn {
                code,
                dst,
                imm,
                ..Insn::default()
            })));
        }
        // `movsx` + the source width + the destination width (`movsx832`, `movsx3264`, as
        // bpf_conformance writes it); the source width alone (`movsx8`) is the 64-bit form.
        if let Some(widths) = m.strip_prefix("movsx") {
            let (class, off) = match widths {
                "832" => (ALU, 8),
                "1632" => (ALU, 16),
                "8" | "864" => (ALU64, 8),
                "16" | "1664" => (ALU64, 16),
                "32" | "3264" => (ALU64, 32),
                _ => return Ok(None),
            };
            let dst = self.reg()?;
            self.expect(',')?;
            let src = self.reg()?;
            return Ok(Some(Item::new(Insn {
                code: class | MOV | X,
                dst,
                src,
                off,
                imm: 0,
            })));
        }
        let (base, class) = if let Some(base) = m.strip_suffix("32") {
            (base, ALU)
        } else if let Some(base) = m.strip_suffix("64") {
            (base, ALU64)
        } else {
            (m, ALU64)
        };
        let (op, off) = match base {
            "sdiv" => (DIV, 1),
            "smod" => (MOD, 1),
            _ => match ALU_OPS.iter().find(|(n, _)| *n == base) {
                Some(&(_, op)) => (op, 0),
                None => return Ok(None),
            },
        };
        let dst = self.reg()?;
        if op == NEG {
            return Ok(Some(Item::new(Insn {
                code: class | NEG,
                dst,
                ..Insn::default()
            })));
        }
        self.expect(',')?;
        let insn = with_source(class | op, dst, self.operand()?);
        Ok(Some(Item::new(Insn { off, ..insn })))
    }

    /// `ja TARGET`, `ja32 TARGET` (also `gotol`: the offset in the immediate), and the
    /// conditional jumps `jOP[32] dst, src|imm, TARGET`. `None` if `m` is not one of them.
    fn jump(&mut self, m: &str) -> Result<Option<Item>, AsmError> {
        let (code, conditional) = match m {
            "ja" => (JMP | JA, false),
            "ja32" | "gotol" => (JMP32 | JA, false),
            _ => {
                let (base, class) = match m.strip_suffix("32") {
                    Some(base) => (base, JMP32),
                    None => (m, JMP),
                };
                match JMP_OPS.iter().find(|(n, _)| *n == base) {
                    Some(&(_, op)) => (class | op, true),
                    None => return Ok(None),
                }
            }
        };
        let insn = if conditional {
            let dst = self.reg()?;
            self.expect(',')?;
            let insn = with_source(code, dst, self.operand()?);
            self.expect(',')?;
            insn
        } else {
            Insn {
                code,
                ..Insn::default()
            }
        };
        let target = self.target()?;
        Ok(Some(Item {
            target: Some(target),
            ..Item::new(insn)
        }))
    }

    /// Loads and stores: `ldx`, `ldxs` (sign-extending, ISA v4), `st`, `stx`, and the legacy
    /// packet loads `ldabs` and `ldind`, each with a size suffix. `None` if `m` is not one.
    fn load_store(&mut self, m: &str) -> Result<Option<Item>, AsmError> {
        let sized = |prefix: &str| m.strip_prefix(prefix).and_then(size_code);
        if let Some(size) = sized("ldxs") {
            return self.load(LDX | MEMSX | size).map(Some);
        }
        if let Some(size) = sized("ldx") {
            return self.load(LDX | MEM | size).map(Some);
        }
        if let Some(size) = sized("stx") {
            let (dst, off) = self.memory()?;
            self.expect(',')?;
            let src = self.reg()?;
            return Ok(Some(Item::new(Insn {
                code: STX | MEM | size,
                dst,
                src,
                off,
                imm: 0,
            })));
        }
        if let Some(size) = sized("st") {
            let (dst, off) = self.memory()?;
            self.expect(',')?;
            let imm = self.imm32()?;
            return Ok(Some(Item::new(Insn {
                code: ST | MEM | size,
                dst,
                src: 0,
                off,
                imm,
            })));
        }
        if let Some(size) = sized("ldabs") {
            let imm = self.imm32()?;
            return Ok(Some(Item::new(Insn {
                code: LD | ABS | size,
                imm,
                ..Insn::default()
            })));
        }
        if let Some(size) = sized("ldind") {
            let src = self.reg()?;
            self.expect(',')?;
            let imm = self.imm32()?;
            return Ok(Some(Item::new(Insn {
                code: LD | IND | size,
                src,
                imm,
                ..Insn::default()
            })));
        }
        Ok(None)
    }

    /// `dst, [src+off]`.
    fn load(&mut self, code: u8) -> Result<Item, AsmError> {
        let dst = self.reg()?;
        self.expect(',')?;
        let (src, off) = self.memory()?;
        Ok(Item::new(Insn {
            code,
            dst,
            src,
            off,
            imm: 0,
        }))
    }

    /// Consumes `s` if it comes next (after spaces).
    fn eat(&mut self, s: &str) -> bool {
        self.skip_space();
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// `lddw dst, VALUE` and the other kinds of 64-bit immediate load (RFC 9669, 5.4):
    /// `map_by_fd(M)`, `map_val(map_by_fd(M)) + OFF`, `var_addr(N)`, `code_addr(TARGET)`,
    /// `map_by_idx(N)` and `map_val(map_by_idx(N)) + OFF`. A map `M` is a number or a map's
    /// name, which the harness resolves (`map:NAME` is the harness's older spelling).
    fn lddw(&mut self) -> Result<Item, AsmError> {
        let dst = self.reg()?;
        self.expect(',')?;
        self.skip_space();
        let lddw = |src: u8, imm: i32| {
            Item::new(Insn {
                code: LD | DW | IMM,
                dst,
                src,
                imm,
                ..Insn::default()
            })
        };
        if self.text[self.pos..].starts_with("map:") {
            let at = self.pos;
            let word = self.word().to_owned();
            let name = &word["map:".len()..];
            if !is_ident(name) {
                self.pos = at;
                return self.error(format!("bad map name `{name}`"));
            }
            return Ok(Item {
                map: Some(name.to_owned()),
                ..lddw(LDDW_MAP_BY_FD, 0)
            });
        }
        if self.eat("map_val(") {
            let (src, map) = if self.eat("map_by_fd(") {
                (LDDW_MAP_VALUE_BY_FD, self.map_operand(true)?)
            } else if self.eat("map_by_idx(") {
                (LDDW_MAP_VALUE_BY_IDX, self.map_operand(false)?)
            } else {
                return self.error(format!(
                    "expected `map_by_fd(` or `map_by_idx(`, found `{}`",
                    self.token_here()
                ));
            };
            self.expect(')')?;
            self.expect(')')?;
            let high = if self.eat("+") { self.imm32()? } else { 0 };
            return Ok(Item {
                high,
                ..with_map(lddw(src, 0), map)
            });
        }
        let simple = [
            ("map_by_fd(", LDDW_MAP_BY_FD),
            ("map_by_idx(", LDDW_MAP_BY_IDX),
            ("var_addr(", LDDW_VAR_ADDR),
        ];
        for (prefix, src) in simple {
            if self.eat(prefix) {
                let map = self.map_operand(src == LDDW_MAP_BY_FD)?;
                self.expect(')')?;
                return Ok(with_map(lddw(src, 0), map));
            }
        }
        if self.eat("code_addr(") {
            let target = self.target()?;
            self.expect(')')?;
            return Ok(Item {
                target: Some(target),
                ..lddw(LDDW_CODE_ADDR, 0)
            });
        }
        let at = self.pos;
        let n = self.number()?;
        if !(i64::MIN as i128..=u64::MAX as i128).contains(&n) {
            self.pos = at;
            return self.error(format!("{n} does not fit in 64 bits"));
        }
        let value = n as u64;
        Ok(Item {
            high: (value >> 32) as u32 as i32,
            ..lddw(LDDW_IMM64, value as u32 as i32)
        })
    }

    /// The operand of `map_by_fd(` and its kin: a 32-bit number, or, where `names` allows,
    /// the name of one of the case's maps.
    fn map_operand(&mut self, names: bool) -> Result<Result<String, i32>, AsmError> {
        self.skip_space();
        if names && self.text[self.pos..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        {
            let at = self.pos;
            let word = self.word().to_owned();
            if !is_ident(&word) {
                self.pos = at;
                return self.error(format!("bad map name `{word}`"));
            }
            return Ok(Ok(word));
        }
        Ok(Err(self.imm32()?))
    }

    /// `call local TARGET` (a BPF function), `call runtime N` (a helper by BTF id), `call rN`
    /// (callx), `call helper X` or plain `call X` (a helper by name, with or without the
    /// kernel's `bpf_` prefix, or by number).
    fn call(&mut self) -> Result<Item, AsmError> {
        let insn = Insn {
            code: JMP | CALL,
            ..Insn::default()
        };
        if self.at_register() {
            return self.callx();
        }
        let at = self.pos;
        let mut word = self.word().to_owned();
        match word.as_str() {
            "local" => {
                let target = self.target()?;
                return Ok(Item {
                    target: Some(target),
                    ..Item::new(Insn {
                        src: PSEUDO_CALL,
                        ..insn
                    })
                });
            }
            "runtime" => {
                let imm = self.imm32()?;
                return Ok(Item::new(Insn {
                    src: CALL_BTF_ID,
                    imm,
                    ..insn
                }));
            }
            "helper" => {
                if self.at_register() {
                    return self.callx();
                }
                word = self.word().to_owned();
            }
            _ => {}
        }
        let helper = word.strip_prefix("bpf_").unwrap_or(&word);
        let imm = match HELPERS.iter().find(|(n, _)| *n == helper) {
            Some(&(_, id)) => id,
            None => match parse_number(&word) {
                Some(n) if (i32::MIN as i128..=u32::MAX as i128).contains(&n) => n as i64 as i32,
                _ => {
                    self.pos = at;
                    self.skip_space();
                    return self.error(format!(
                        "expected `local LABEL`, `runtime N`, a register, or a helper's \
                         number or name, found `{}`",
                        if word.is_empty() {
                            self.token_here().to_owned()
                        } else {
                            word
                        }
                    ));
                }
            },
        };
        Ok(Item::new(Insn { imm, ..insn }))
    }

    /// `callx rN`: a call to the BPF function whose address is in `rN` (kept in `dst`).
    fn callx(&mut self) -> Result<Item, AsmError> {
        let dst = self.reg()?;
        Ok(Item::new(Insn {
            code: JMP | CALL | X,
            dst,
            ..Insn::default()
        }))
    }

    /// Whether a register comes next.
    fn at_register(&mut self) -> bool {
        self.skip_space();
        let rest = &self.text[self.pos..];
        rest.starts_with('%')
            || (rest.starts_with('r') && rest[1..].starts_with(|c: char| c.is_ascii_digit()))
    }

    /// `lock [fetch] OP[32] [dst+off], src`.
    fn atomic(&mut self) -> Result<Item, AsmError> {
        self.skip_space();
        let mut at = self.pos;
        let mut word = self.word().to_ascii_lowercase();
        let fetch = word == "fetch";
        if fetch {
            self.skip_space();
            at = self.pos;
            word = self.word().to_ascii_lowercase();
        }
        let (name, size) = match word.strip_suffix("32") {
            Some(name) => (name.to_owned(), W),
            None => (word.clone(), DW),
        };
        let Some(&(_, mut imm)) = ATOMIC_OPS.iter().find(|(n, _)| *n == name) else {
            self.pos = at;
            return self.error(format!("unknown atomic operation `{word}`"));
        };
        if fetch {
            if imm & FETCH != 0 {
                self.pos = at;
                return self.error(format!("`{name}` always fetches; write it without `fetch`"));
            }
            imm |= FETCH;
        }
        let (dst, off) = self.memory()?;
        self.expect(',')?;
        let src = self.reg()?;
        Ok(Item::new(Insn {
            code: STX | ATOMIC | size,
            dst,
            src,
            off,
            imm,
        }))
    }

    /// `.insn CODE rDST rSRC OFF IMM` (commas optional): one slot as given, for the
    /// instructions without a mnemonic, which is how the disassembler writes them.
    fn raw(&mut self) -> Result<Item, AsmError> {
        let at = self.pos;
        let code = self.number()?;
        let Ok(code) = u8::try_from(code) else {
            self.pos = at;
            self.skip_space();
            return self.error(format!("opcode {code} does not fit in 8 bits"));
        };
        self.eat(",");
        let dst = self.reg_up_to(15)?;
        self.eat(",");
        let src = self.reg_up_to(15)?;
        self.eat(",");
        self.skip_space();
        let at = self.pos;
        let off = self.number()?;
        let off = match off {
            -0x8000..=0xffff => off as i64 as u16 as i16,
            _ => {
                self.pos = at;
                return self.error(format!("offset {off} does not fit in 16 bits"));
            }
        };
        self.eat(",");
        let imm = self.imm32()?;
        Ok(Item {
            raw: true,
            ..Item::new(Insn {
                code,
                dst,
                src,
                off,
                imm,
            })
        })
    }
}

/// `item` with its map: a name to resolve, or a number already in `imm`.
fn with_map(item: Item, map: Result<String, i32>) -> Item {
    match map {
        Ok(name) => Item {
            map: Some(name),
            ..item
        },
        Err(imm) => Item {
            insn: Insn { imm, ..item.insn },
            ..item
        },
    }
}

/// An ALU or jump instruction whose source is a register (`X`) or an immediate (`K`).
fn with_source(code: u8, dst: u8, source: Result<u8, i32>) -> Insn {
    match source {
        Ok(src) => Insn {
            code: code | X,
            dst,
            src,
            ..Insn::default()
        },
        Err(imm) => Insn {
            code: code | K,
            dst,
            imm,
            ..Insn::default()
        },
    }
}

fn size_code(suffix: &str) -> Option<u8> {
    match suffix {
        "b" => Some(B),
        "h" => Some(H),
        "w" => Some(W),
        "dw" => Some(DW),
        _ => None,
    }
}

/// Decimal or `0x` hex, with an optional sign.
pub fn parse_number(word: &str) -> Option<i128> {
    let (negative, digits) = match word.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, word.strip_prefix('+').unwrap_or(word)),
    };
    let value = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => i128::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<i128>().ok()?,
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str) -> Vec<Insn> {
        assemble(text).unwrap().encode().unwrap()
    }

    fn error(text: &str) -> String {
        assemble(text).unwrap_err().to_string()
    }

    #[test]
    fn round_trips_through_the_disassembler() {
        let text = "\
mov32 r0, 1
add r0, r1
lsh32 r3, r9
neg r4
be16 r2
le64 r2
ldxh r0, [r1+2]
stw [r10-8], -1
stxdw [r10-16], r5
lock fetch add [r10-8], r1
lock xchg32 [r10-4], r2
lock cmpxchg [r10-8], r3
jslt32 r1, 5, +1
jle32 r1, r2, +0
ja +0
call map_lookup_elem
exit";
        let insns = encode(text);
        let back: Vec<String> = insns.iter().map(ToString::to_string).collect();
        assert_eq!(back.join("\n"), text);
    }

    #[test]
    fn percent_registers_labels_and_lddw() {
        let insns =
            encode("lddw %r0, 0x123456789abcdef0\njeq %r0, 0, done\nmov %r0, -1\ndone:\nexit");
        assert_eq!(insns.len(), 5);
        assert_eq!(
            (insns[0].imm as u32, insns[1].imm as u32),
            (0x9abc_def0, 0x1234_5678)
        );
        assert_eq!(insns[2].off, 1);
    }

    #[test]
    fn isa_v4_instructions_assemble() {
        let insns = encode(
            "sdiv r0, 3\nsmod32 r1, r2\nmovsx8 r0, r1\nldxsh r0, [r1+2]\nswap16 r3\ngotol +0\nexit",
        );
        let codes: Vec<(u8, i16, i32)> = insns.iter().map(|i| (i.code, i.off, i.imm)).collect();
        assert_eq!(
            codes,
            [
                (0x37, 1, 3),
                (0x9c, 1, 0),
                (0xbf, 8, 0),
                (0x89, 2, 0),
                (0xd7, 0, 16),
                (0x06, 0, 0),
                (0x95, 0, 0)
            ]
        );
    }

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn::new(code, dst, src, off, imm)
    }

    /// The farthest a jump of the round trips below goes, in slots.
    const REACH: i32 = 40_000;

    /// Checks that `insns`, disassembled and assembled again, are the same instructions.
    /// They sit between `REACH` slots of padding on each side, so that any jump of theirs
    /// lands inside the program.
    fn assert_round_trip(insns: &[Insn]) {
        let pad = vec![insn(ALU64 | MOV, 0, 0, 0, 0); REACH as usize + 1];
        let program = [pad.as_slice(), insns, pad.as_slice()].concat();
        let text = to_asm(&program);
        let again = match assemble(&text).map(|p| p.encode()) {
            Ok(Ok(again)) => again,
            Ok(Err(e)) => panic!("{e}"),
            Err(e) => {
                let line = text.lines().nth(e.line - 1).unwrap_or("");
                panic!("{e} in `{line}`");
            }
        };
        assert_eq!(again.len(), program.len());
        for (slot, (want, got)) in program.iter().zip(&again).enumerate() {
            let text = to_asm(std::slice::from_ref(want));
            assert_eq!(want, got, "slot {slot}: `{}`", text.trim());
        }
    }

    /// Every opcode of RFC 9669 (its appendix A), with representative operands: each class,
    /// operation, source, width and mode, and the kernel's `callx`.
    fn rfc9669_instructions() -> Vec<Insn> {
        let mut all = Vec::new();
        let imms = [0, 1, -1, 0x7fff_ffff, i32::MIN, 0x1234_5678];
        let offs = [i16::MIN, -1, 0, 1, 7, i16::MAX];
        for class in [ALU, ALU64] {
            for (_, op) in ALU_OPS {
                if op == NEG {
                    all.extend([
                        insn(class | NEG, 3, 0, 0, 0),
                        insn(class | NEG, 10, 0, 0, 0),
                    ]);
                    continue;
                }
                all.extend(imms.map(|imm| insn(class | K | op, 2, 0, 0, imm)));
                all.extend(
                    [(0, 10), (10, 0), (4, 4)].map(|(d, s)| insn(class | X | op, d, s, 0, 0)),
                );
            }
            // sdiv and smod.
            for op in [DIV, MOD] {
                all.extend(imms.map(|imm| insn(class | K | op, 1, 0, 1, imm)));
                all.push(insn(class | X | op, 1, 2, 1, 0));
            }
            // movsx, and the byte swaps.
            let (widths, swaps): (&[i16], &[u8]) = if class == ALU {
                (&[8, 16], &[K, X])
            } else {
                (&[8, 16, 32], &[K])
            };
            all.extend(
                widths
                    .iter()
                    .map(|&off| insn(class | X | MOV, 1, 9, off, 0)),
            );
            for &source in swaps {
                all.extend([16, 32, 64].map(|imm| insn(class | END | source, 5, 0, 0, imm)));
            }
        }
        for class in [JMP, JMP32] {
            for (_, op) in JMP_OPS {
                for off in offs {
                    all.push(insn(class | K | op, 1, 0, off, -5));
                    all.push(insn(class | X | op, 1, 10, off, 0));
                }
            }
        }
        all.extend(offs.map(|off| insn(JMP | JA, 0, 0, off, 0)));
        all.extend([-REACH, -1, 0, 1, 32768, REACH].map(|imm| insn(JMP32 | JA, 0, 0, 0, imm)));
        all.extend([
            insn(JMP | CALL, 0, CALL_HELPER, 0, 1),
            insn(JMP | CALL, 0, CALL_HELPER, 0, 0x7fff_ffff),
            insn(JMP | CALL, 0, PSEUDO_CALL, 0, -3),
            insn(JMP | CALL, 0, PSEUDO_CALL, 0, REACH),
            insn(JMP | CALL, 0, CALL_BTF_ID, 0, 7),
            insn(JMP | CALL | X, 0, 0, 0, 0),
            insn(JMP | CALL | X, 10, 0, 0, 0),
            insn(JMP | EXIT, 0, 0, 0, 0),
        ]);
        for size in [W, H, B] {
            all.extend(imms.map(|imm| insn(LD | ABS | size, 0, 0, 0, imm)));
            all.extend(imms.map(|imm| insn(LD | IND | size, 0, 3, 0, imm)));
        }
        for size in [W, H, B, DW] {
            for off in offs {
                all.push(insn(LDX | MEM | size, 0, 10, off, 0));
                all.push(insn(ST | MEM | size, 10, 0, off, -2));
                all.push(insn(STX | MEM | size, 10, 1, off, 0));
                if size != DW {
                    all.push(insn(LDX | MEMSX | size, 9, 1, off, 0));
                }
            }
        }
        for size in [W, DW] {
            for imm in [
                0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, XCHG, CMPXCHG,
            ] {
                all.push(insn(STX | ATOMIC | size, 10, 0, -8, imm));
                all.push(insn(STX | ATOMIC | size, 1, 9, 3, imm));
            }
        }
        all
    }

    #[test]
    fn every_rfc9669_opcode_has_a_mnemonic_and_round_trips() {
        let all = rfc9669_instructions();
        for insn in &all {
            let text = insn.to_string();
            assert!(
                !text.starts_with(".insn"),
                "{insn:?} has no mnemonic: {text}"
            );
        }
        // Each opcode of the appendix, telling apart the kinds of call (in `src`) and the
        // signed and sign-extending ALU operations (in `off`): 66 ALU and ALU64, 28 JMP
        // (callx included), 23 JMP32, 6 legacy packet loads, 7 LDX, 4 ST, 6 STX. The
        // seven kinds of 0x18 are `every_kind_of_lddw_round_trips`'.
        let kinds: std::collections::BTreeSet<(u8, u8, i16)> = all
            .iter()
            .map(|i| {
                let alu = i.class() == ALU || i.class() == ALU64;
                let src = if i.code == JMP | CALL { i.src } else { 0 };
                let off = if alu { i.off } else { 0 };
                (i.code, src, off)
            })
            .collect();
        assert_eq!(kinds.len(), 140, "{kinds:?}");
        assert_round_trip(&all);
    }

    #[test]
    fn every_kind_of_lddw_round_trips() {
        let lddw =
            |src: u8, imm: i32, high: i32| [insn(LD | DW, 3, src, 0, imm), insn(0, 0, 0, 0, high)];
        let mut insns = vec![insn(ALU64 | MOV, 0, 0, 0, 0); 4];
        // `code_addr` takes the address of the first slot of the program: 4 + 1 - 5 = 0.
        insns.extend(lddw(LDDW_CODE_ADDR, -5, 0));
        insns.extend(lddw(LDDW_IMM64, 0, 0));
        insns.extend(lddw(LDDW_IMM64, -1, -1));
        insns.extend(lddw(LDDW_IMM64, 0x89ab_cdef_u32 as i32, 0x0123_4567));
        insns.extend(lddw(LDDW_MAP_BY_FD, 0, 0));
        insns.extend(lddw(LDDW_MAP_BY_FD, -1, 0));
        insns.extend(lddw(LDDW_MAP_VALUE_BY_FD, 2, 16));
        insns.extend(lddw(LDDW_MAP_VALUE_BY_FD, 2, -16));
        insns.extend(lddw(LDDW_VAR_ADDR, 77, 0));
        insns.extend(lddw(LDDW_MAP_BY_IDX, 1, 0));
        insns.extend(lddw(LDDW_MAP_VALUE_BY_IDX, 1, i32::MAX));
        // Fields no kind uses: written raw, slot by slot.
        insns.extend(lddw(LDDW_MAP_BY_FD, 1, 1));
        insns.extend(lddw(7, 1, 0));
        insns.extend([insn(LD | DW, 1, 0, 0, 1), insn(JMP | EXIT, 0, 0, 0, 0)]);
        insns.extend([insn(LD | DW, 11, 0, 0, 1), insn(0, 0, 0, 0, 0)]);
        insns.extend([insn(LD | DW, 1, 0, 4, 1), insn(0, 0, 0, 0, 0)]);
        // `code_addr` of the next instruction (counted, as the kernel does, from the slot
        // after the first), then a `lddw` cut short by the end of the program.
        insns.extend(lddw(LDDW_CODE_ADDR, 1, 0));
        insns.push(insn(ALU64 | MOV, 0, 0, 0, 0));
        insns.push(insn(LD | DW, 2, 0, 0, 9));
        let text = to_asm(&insns);
        let again = assemble(&text).unwrap().encode().unwrap();
        assert_eq!(again, insns, "{text}");
    }

    /// Every opcode, defined or not, with each field set in turn to values that matter to
    /// some instruction: what has a mnemonic comes back from it, the rest from `.insn`.
    #[test]
    fn every_opcode_with_any_fields_round_trips() {
        let mut all = Vec::new();
        for code in 0..=u8::MAX {
            if code == LD | DW | IMM {
                continue; // two slots: `every_kind_of_lddw_round_trips`
            }
            let base = insn(code, 0, 0, 0, 0);
            all.push(base);
            all.extend([1, 10, 11, 15].map(|dst| Insn { dst, ..base }));
            all.extend([1, 2, 3, 10, 11, 15].map(|src| Insn { src, ..base }));
            all.extend([1, -1, 8, 16, 32, 64, i16::MIN, i16::MAX].map(|off| Insn { off, ..base }));
            all.extend(
                [
                    1,
                    -1,
                    16,
                    32,
                    64,
                    0x41,
                    0xe0,
                    0xe1,
                    0xf1,
                    0x100,
                    i32::MIN,
                    i32::MAX,
                ]
                .map(|imm| Insn { imm, ..base }),
            );
            all.push(insn(code, 10, 9, -8, 16));
            all.push(insn(code, 15, 15, -1, -1));
        }
        // A `ja32` or `call local` beyond the padding has no place to land.
        all.retain(|i| {
            let text = i.to_string();
            !(text.starts_with("ja32") || text.starts_with("call local"))
                || i.imm.unsigned_abs() <= REACH as u32
        });
        assert_round_trip(&all);
    }

    #[test]
    fn older_and_other_spellings_assemble_alike() {
        let pairs = [
            // bpf_conformance's spellings against the disassembler's.
            ("movsx864 %r0, %r1", "movsx8 r0, r1"),
            ("movsx1664 %r0, %r1", "movsx16 r0, r1"),
            ("movsx3264 %r0, %r1", "movsx32 r0, r1"),
            ("swap16 %r3", "bswap16 r3"),
            ("swap64 %r3", "bswap64 r3"),
            ("ja32 +0", "gotol +0"),
            ("call %r2", "callx r2"),
            ("call helper %r2", "call r2"),
            ("call helper 5", "call 5"),
            ("call bpf_map_lookup_elem", "call 1"),
            ("add64 %r1, 2", "add r1, 2"),
            ("neg64 %r1", "neg r1"),
            ("sdiv64 %r1, %r2", "sdiv r1, r2"),
            ("lddw %r1, map_by_fd(7)", "lddw r1, map_by_fd( 7 )"),
            (
                "lddw %r1, map_val(map_by_fd(7))",
                "lddw r1, map_val(map_by_fd(7)) + 0",
            ),
            (
                "lddw %r1, map_val(map_by_idx(7)) +8",
                "lddw r1, map_val(map_by_idx(7)) + 8",
            ),
            (".insn 0x07, r1, r0, 0, 1", "add r1, 1"),
            (".insn 0x07 r1 r0 0xffff 1", ".insn 0x07 r1 r0 -1 1"),
        ];
        for (one, other) in pairs {
            assert_eq!(encode(one), encode(other), "`{one}` and `{other}`");
        }
    }

    #[test]
    fn functions_named_by_code_addr_end_the_main_program() {
        let program =
            assemble("lddw r1, code_addr(f)\ncallx r1\nexit\nf:\nmov r0, 1\nexit").unwrap();
        assert_eq!(program.main_len(), 3);
        let insns = program.encode().unwrap();
        // The kernel counts from the slot after the first: 1 + 3 = 4, where `f` starts.
        assert_eq!((insns[0].src, insns[0].imm), (LDDW_CODE_ADDR, 3));
        assert_eq!((insns[2].code, insns[2].dst), (JMP | CALL | X, 1));
        let by_name = assemble("lddw r1, map_val(map_by_fd(values)) + 4\nexit").unwrap();
        assert_eq!(by_name.map_refs(), [(0, "values")]);
        assert_eq!(by_name.encode().unwrap()[1].imm, 4);
    }

    #[test]
    fn an_undefined_exit_label_is_the_first_exit() {
        let insns = encode("jne r1, r0, exit\nmov r0, 0\nexit\nexit");
        assert_eq!(insns[0].off, 1);
    }

    #[test]
    fn relative_offsets_count_lddw_as_two_slots() {
        let program = assemble("ja +2\nlddw r1, 1\nexit").unwrap();
        assert_eq!(program.items[0].target(), Some(2));
        assert_eq!(program.encode().unwrap()[0].off, 2);
    }

    #[test]
    fn local_calls_and_main_length() {
        let program = assemble("call local f\nexit\nf:\nmov r0, 1\nexit").unwrap();
        assert_eq!(program.main_len(), 2);
        let insns = program.encode().unwrap();
        assert_eq!((insns[0].src, insns[0].imm), (PSEUDO_CALL, 1));
    }

    #[test]
    fn map_references() {
        let program = assemble("mov r0, 0\nlddw %r1, map:counters\nexit").unwrap();
        assert_eq!(program.map_refs(), [(1, "counters")]);
        let by_fd =
            assemble("lddw r1, map_by_fd(array_map)\ncall bpf_map_lookup_elem\nexit").unwrap();
        assert_eq!(by_fd.map_refs(), [(0, "array_map")]);
        assert_eq!(by_fd.encode().unwrap()[2].imm, 1);
        let insns = program.encode().unwrap();
        assert_eq!((insns[1].src, insns[1].imm), (PSEUDO_MAP_FD, 0));
    }

    #[test]
    fn immediates_at_the_edges() {
        assert_eq!(encode("mov r0, 0xffffffff")[0].imm, -1);
        assert_eq!(encode("mov r0, -0x80000000")[0].imm, i32::MIN);
        assert_eq!(
            error("mov r0, 0x100000000"),
            "1:9: 4294967296 does not fit in a 32-bit immediate"
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        assert_eq!(
            error("mov r0, 1\n  movv r0, 1"),
            "2:3: unknown instruction `movv`"
        );
        assert_eq!(
            error("mov r11, 1"),
            "1:5: expected a register r0..r10, found `r11`"
        );
        assert_eq!(error("ldxw r0, r1+2"), "1:10: expected `[`");
        assert_eq!(error("jeq r0, 1, nowhere\nexit"), "1:1: no label `nowhere`");
        assert_eq!(
            error("ja +5\nexit"),
            "1:1: offset +5 lands outside the program or inside an lddw"
        );
        assert_eq!(error("exit now"), "1:6: unexpected `now`");
        assert_eq!(
            error("lock fetch xchg [r1], r2"),
            "1:12: `xchg` always fetches; write it without `fetch`"
        );
        assert_eq!(error("x:\nx:\nexit"), "2:1: label `x` defined twice");
        assert_eq!(
            error("add r0, [r1+2]"),
            "1:9: expected a register or an immediate, found `[r1+2]`"
        );
        assert_eq!(
            error("mov r0,"),
            "1:8: expected a register or an immediate, found `end of line`"
        );
        assert_eq!(
            error("movsx864 r0, 5"),
            "1:14: expected a register r0..r10, found `5`"
        );
        assert_eq!(
            error("movsx6432 r0, r1"),
            "1:1: unknown instruction `movsx6432`"
        );
        assert_eq!(error("bswap8 r0"), "1:1: unknown instruction `bswap8`");
        assert_eq!(
            error("call %r11"),
            "1:6: expected a register r0..r10, found `%r11`"
        );
        assert_eq!(
            error("call [r1]"),
            "1:6: expected `local LABEL`, `runtime N`, a register, or a helper's number or \
             name, found `[r1]`"
        );
        assert_eq!(
            error(".insn 0x100 r0 r0 0 0"),
            "1:7: opcode 256 does not fit in 8 bits"
        );
        assert_eq!(
            error(".insn 0x07 r16 r0 0 0"),
            "1:12: expected a register r0..r15, found `r16`"
        );
        assert_eq!(
            error("lddw r1, map_val(var_addr(1))"),
            "1:18: expected `map_by_fd(` or `map_by_idx(`, found `var_addr(1))`"
        );
        assert_eq!(
            error("lddw r1, map_by_idx(x)"),
            "1:21: expected a number, found `x)`"
        );
        assert_eq!(error("lddw r1, code_addr(+1"), "1:22: expected `)`");
    }
}
