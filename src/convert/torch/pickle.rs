//! A restricted unpickler for the `data.pkl` of a `torch.save` state dict.
//!
//! Modelled on PyTorch's own `torch/_weights_only_unpickler.py`, but smaller: it is a pickle virtual
//! machine whose objects are plain data (None, bools, ints, floats, strings, bytes, tuples, lists,
//! dicts) plus three kinds of opaque values — an allowed global, a storage reference and a tensor
//! view. Nothing is ever imported, looked up by name or called: `GLOBAL` resolves its two strings
//! against a fixed table ([`Global`]) and refuses any other name (`os.system`, `builtins.eval`,
//! `posix.system`, …) with an error naming it; `REDUCE` only "calls" the entries of that table,
//! each of which just records or checks data.
//!
//! Objects live in one arena and are referred to by index, so the memo, `DUP` and `BINGET` share
//! objects exactly as Python does without reference counting: a self-containing list is just an
//! index inside its own vector, there is no recursive traversal or drop, and memory is linear in the
//! number of opcodes executed (each creates at most one object), which is at most the input length.
//! Work per opcode is bounded too: shapes have at most [`MAX_DIMS`] dimensions, a call at most 7
//! arguments, tensor metadata at most 8 entries, so reusing one long object many times (via the
//! memo) cannot multiply time or memory.
//!
//! ## Opcodes (CPython `pickle.py` / `pickletools.py`)
//!
//! Executed: `PROTO` (≤ 5), `FRAME` (skipped), `STOP`, `MARK`, `POP`, `POP_MARK`, `DUP`, `NONE`,
//! `NEWTRUE`, `NEWFALSE`, `BININT` (i32), `BININT1` (u8), `BININT2` (u16), `LONG1` (≤ 8 significant
//! bytes), `BINFLOAT`, `BINUNICODE`/`SHORT_BINUNICODE`/`BINUNICODE8` (UTF-8),
//! `SHORT_BINSTRING`/`BINSTRING` (ASCII), `SHORT_BINBYTES`/`BINBYTES`, `EMPTY_TUPLE`, `TUPLE`,
//! `TUPLE1..3`, `EMPTY_LIST`, `LIST`, `APPEND`, `APPENDS` (lists only), `EMPTY_DICT`, `DICT`,
//! `SETITEM`, `SETITEMS` (dicts only), `GLOBAL`/`STACK_GLOBAL` (allow-list), `REDUCE` (allow-list),
//! `BUILD` (an OrderedDict's attributes, dropped), `BINPERSID` (storage ids only), `BINGET`,
//! `LONG_BINGET`, `BINPUT`, `LONG_BINPUT`, `MEMOIZE`.
//!
//! Refused by name (UNSUPPORTED): every other opcode of protocols 0–5 — `INST`, `OBJ`, `NEWOBJ`,
//! `NEWOBJ_EX` (construct arbitrary classes), `EXT1/2/4` (the copyreg registry), `PERSID`, `GET`,
//! `PUT`, `INT`, `LONG`, `FLOAT`, `STRING`, `UNICODE` (text protocol 0), `LONG4`, `BINBYTES8`,
//! `BYTEARRAY8`, `EMPTY_SET`, `ADDITEMS`, `FROZENSET`, `NEXT_BUFFER`, `READONLY_BUFFER`. Any other
//! byte is an unknown opcode (FORMAT).

use super::TorchDtype;
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;

/// Most dimensions a tensor may have: far more than any checkpoint uses (at most 5 in practice), and
/// small enough that copying a shape per tensor stays cheap whatever the pickle reuses.
pub const MAX_DIMS: usize = 64;

/// Most arguments an allowed callable takes (`_rebuild_tensor_v2` with metadata).
const MAX_ARGS: usize = 7;
/// Most entries of a tensor's metadata dict (`get_tensor_metadata` has conj and neg bits).
const MAX_METADATA: usize = 8;

/// The globals a state dict pickle may name. Anything else is refused by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    /// `collections.OrderedDict` (the state dict itself and every `backward_hooks` argument).
    OrderedDict,
    /// `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
    /// backward_hooks[, metadata])`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor(storage, storage_offset, size, stride)`.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)`: an `nn.Parameter`
    /// saved as such (`state_dict(keep_vars=True)`); we keep its tensor.
    RebuildParameter,
    /// `torch.<Name>Storage`: only meaningful inside a persistent id.
    StorageType(TorchDtype),
}

impl Global {
    /// Resolves a `GLOBAL module name` pair against the allow-list.
    fn resolve(module: &str, name: &str) -> Option<Global> {
        match (module, name) {
            ("collections", "OrderedDict") => Some(Global::OrderedDict),
            ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
            ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
            ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
            ("torch", _) => TorchDtype::from_storage_name(name).map(Global::StorageType),
            _ => None,
        }
    }
    fn name(self) -> String {
        match self {
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildTensor => "torch._utils._rebuild_tensor".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::StorageType(d) => format!("torch.{}", d.storage_name()),
        }
    }
}

/// The allow-list, as the error for a refused global prints it.
pub const ALLOWED_GLOBALS: &str = "collections.OrderedDict, torch._utils._rebuild_tensor_v2, \
     torch._utils._rebuild_tensor, torch._utils._rebuild_parameter and the storage types \
     torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool,ComplexFloat,ComplexDouble,Untyped}Storage";

/// A storage named by a persistent id: the zip entry `<archive>/data/<key>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: TorchDtype,
    /// Number of elements of `dtype` (the entry must hold `numel * dtype.size()` bytes).
    pub numel: u64,
}

/// A tensor view on a storage, as `_rebuild_tensor_v2` describes it (all counts in elements).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorRef {
    /// Index into [`StateDict::storages`].
    pub storage: usize,
    pub offset: u64,
    /// Sizes, outermost first.
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// The result of unpickling a state dict: its tensors (in pickle order) and the storages they view.
#[derive(Clone, Debug, Default)]
pub struct StateDict {
    pub storages: Vec<StorageRef>,
    pub tensors: Vec<(String, TensorRef)>,
}

type Id = usize;

enum Obj<'a> {
    None,
    Bool(bool),
    Int(i64),
    /// A float (its value is never needed).
    Float,
    Str(&'a str),
    /// A bytes object (its value is never needed).
    Bytes,
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict {
        ordered: bool,
        items: Vec<(Id, Id)>,
    },
    Global(Global),
    Storage(usize),
    Tensor(usize),
}

impl Obj<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "a bool",
            Obj::Int(_) => "an int",
            Obj::Float => "a float",
            Obj::Str(_) => "a string",
            Obj::Bytes => "bytes",
            Obj::Tuple(_) => "a tuple",
            Obj::List(_) => "a list",
            Obj::Dict { ordered: false, .. } => "a dict",
            Obj::Dict { ordered: true, .. } => "an OrderedDict",
            Obj::Global(_) => "a global",
            Obj::Storage(_) => "a storage",
            Obj::Tensor(_) => "a tensor",
        }
    }
}

/// The name of a pickle opcode, for messages (every opcode of protocols 0–5).
fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => return None,
    })
}

fn fmt_err(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Format, message)
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being executed (for messages).
    op_pos: usize,
    objs: Vec<Obj<'a>>,
    stack: Vec<Id>,
    /// Stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u32, Id>,
    storages: Vec<StorageRef>,
    storage_by_key: HashMap<&'a str, usize>,
    tensors: Vec<TensorRef>,
}

/// Unpickles a state dict: `data` is the whole `data.pkl` record.
///
/// The result must be a dict or OrderedDict from names to tensors; anything else, any global or
/// opcode outside the allow-list, and any malformed input is an error naming what is wrong.
pub fn load_state_dict(data: &[u8]) -> Result<StateDict> {
    let mut m = Machine {
        input: data,
        pos: 0,
        op_pos: 0,
        objs: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        storages: Vec::new(),
        storage_by_key: HashMap::new(),
        tensors: Vec::new(),
    };
    let root = m.run()?;
    m.finish(root)
}

impl<'a> Machine<'a> {
    fn err(&self, message: impl std::fmt::Display) -> Error {
        fmt_err(format!("pickle offset {}: {message}", self.op_pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let input: &'a [u8] = self.input;
        match self
            .pos
            .checked_add(n)
            .and_then(|end| input.get(self.pos..end))
        {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.err(format!(
                "truncated: the opcode needs {n} more bytes, {} remain",
                input.len() - self.pos
            ))),
        }
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A length read from the input, bounded by what remains of it.
    fn len(&mut self, n: u64) -> Result<usize> {
        let remaining = (self.input.len() - self.pos) as u64;
        if n > remaining {
            return Err(self.err(format!(
                "truncated: a length of {n} bytes, but only {remaining} remain"
            )));
        }
        Ok(n as usize)
    }
    /// A newline-terminated line (GLOBAL's arguments).
    fn line(&mut self) -> Result<&'a str> {
        let input: &'a [u8] = self.input;
        let rest = &input[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("truncated: GLOBAL argument has no terminating newline"));
        };
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| self.err("GLOBAL argument is not UTF-8"))
    }
    fn utf8(&self, b: &'a [u8]) -> Result<&'a str> {
        std::str::from_utf8(b).map_err(|_| self.err("string is not valid UTF-8"))
    }

    fn push(&mut self, o: Obj<'a>) {
        self.stack.push(self.objs.len());
        self.objs.push(o);
    }
    /// The lowest stack index the current MARK frame may touch.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    fn pop(&mut self) -> Result<Id> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.pop().expect("checked non-empty"))
    }
    fn top(&self) -> Result<Id> {
        if self.stack.len() <= self.floor() {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack[self.stack.len() - 1])
    }
    fn pop_mark(&mut self) -> Result<Vec<Id>> {
        let Some(mark) = self.marks.pop() else {
            return Err(self.err("no MARK on the stack"));
        };
        Ok(self.stack.split_off(mark))
    }
    fn memo_get(&mut self, idx: u32) -> Result<()> {
        match self.memo.get(&idx) {
            Some(&id) => {
                self.stack.push(id);
                Ok(())
            }
            None => Err(self.err(format!("memo key {idx} is not defined"))),
        }
    }
    fn memo_put(&mut self, idx: u32) -> Result<()> {
        let id = self.top()?;
        self.memo.insert(idx, id);
        Ok(())
    }

    /// Runs the opcodes up to STOP; returns the object left on the stack.
    fn run(&mut self) -> Result<Id> {
        loop {
            self.op_pos = self.pos;
            let Some(&op) = self.input.get(self.pos) else {
                return Err(self.err("truncated: the pickle ends without STOP"));
            };
            self.pos += 1;
            match op {
                0x80 => {
                    // PROTO: torch writes protocol 2; later protocols only add opcodes.
                    let v = self.u8()?;
                    if v > 5 {
                        return Err(self.err(format!("unknown pickle protocol {v}")));
                    }
                }
                0x95 => {
                    // FRAME (protocol 4): a length hint; the frame's opcodes follow inline.
                    self.u64()?;
                }
                b'.' => {
                    let root = self.pop()?;
                    return Ok(root);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.stack.push(id);
                }
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Obj::Int(i64::from(v)));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Obj::Int(i64::from(v)));
                }
                0x8a => {
                    // LONG1: n bytes of little-endian two's complement.
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?;
                    let v = self.long(b)?;
                    self.push(Obj::Int(v));
                }
                b'G' => {
                    self.take(8)?;
                    self.push(Obj::Float);
                }
                b'X' => {
                    let n = u64::from(self.u32()?);
                    self.str_op(n)?;
                }
                0x8c => {
                    let n = u64::from(self.u8()?);
                    self.str_op(n)?;
                }
                0x8d => {
                    let n = self.u64()?;
                    self.str_op(n)?;
                }
                b'U' | b'T' => {
                    // SHORT_BINSTRING / BINSTRING: Python 2 str, decoded as ASCII like torch.load.
                    let n = if op == b'U' {
                        u64::from(self.u8()?)
                    } else {
                        let n = self.u32()? as i32;
                        u64::try_from(n).map_err(|_| self.err("negative BINSTRING length"))?
                    };
                    let n = self.len(n)?;
                    let b = self.take(n)?;
                    if !b.is_ascii() {
                        return Err(self.err("a Python 2 string is not ASCII"));
                    }
                    let s = self.utf8(b)?;
                    self.push(Obj::Str(s));
                }
                b'C' | b'B' => {
                    let n = if op == b'C' {
                        u64::from(self.u8()?)
                    } else {
                        u64::from(self.u32()?)
                    };
                    let n = self.len(n)?;
                    self.take(n)?;
                    self.push(Obj::Bytes);
                }
                b')' => self.push(Obj::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < self.floor() + n {
                        return Err(self.err("stack underflow"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Obj::Tuple(items));
                }
                b']' => self.push(Obj::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items));
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.list_mut(list)?.push(item);
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.list_mut(list)?.extend(items);
                }
                b'}' => self.push(Obj::Dict {
                    ordered: false,
                    items: Vec::new(),
                }),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.push(Obj::Dict {
                        ordered: false,
                        items: pairs,
                    });
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top()?;
                    self.dict_mut(dict)?.push((k, v));
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    let dict = self.top()?;
                    self.dict_mut(dict)?.extend(pairs);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(module, name)?;
                }
                0x93 => {
                    // STACK_GLOBAL (protocol 4): module and name are strings on the stack.
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.objs[module], &self.objs[name]) {
                        (Obj::Str(module), Obj::Str(name)) => {
                            let (module, name) = (*module, *name);
                            self.global(module, name)?;
                        }
                        _ => return Err(self.err("STACK_GLOBAL arguments are not strings")),
                    }
                }
                b'R' => self.reduce()?,
                b'b' => self.build()?,
                b'Q' => self.persistent_load()?,
                b'h' => {
                    let i = self.u8()?;
                    self.memo_get(u32::from(i))?;
                }
                b'j' => {
                    let i = self.u32()?;
                    self.memo_get(i)?;
                }
                b'q' => {
                    let i = self.u8()?;
                    self.memo_put(u32::from(i))?;
                }
                b'r' => {
                    let i = self.u32()?;
                    self.memo_put(i)?;
                }
                0x94 => {
                    let i = u32::try_from(self.memo.len()).map_err(|_| self.err("memo is full"))?;
                    self.memo_put(i)?;
                }
                _ => {
                    return Err(match opcode_name(op) {
                        Some(name) => Error::unsupported(format!(
                            "pickle offset {}: opcode {name} (0x{op:02x}) is not allowed in a \
                             state dict (ferrollm's unpickler executes only the opcodes torch.save \
                             writes)",
                            self.op_pos
                        )),
                        None => self.err(format!("unknown pickle opcode 0x{op:02x}")),
                    })
                }
            }
        }
    }

    fn long(&self, b: &[u8]) -> Result<i64> {
        let Some(&last) = b.last() else {
            return Ok(0);
        };
        // Sign-extend to 8 bytes; bytes past the eighth must be pure sign extension.
        let negative = last & 0x80 != 0;
        let fill = if negative { 0xFF } else { 0 };
        let mut buf = [fill; 8];
        let n = b.len().min(8);
        buf[..n].copy_from_slice(&b[..n]);
        let v = i64::from_le_bytes(buf);
        if b.len() > 8 && (b[8..].iter().any(|&x| x != fill) || (v < 0) != negative) {
            return Err(self.err("integer does not fit in 64 bits"));
        }
        Ok(v)
    }

    fn str_op(&mut self, n: u64) -> Result<()> {
        let n = self.len(n)?;
        let b = self.take(n)?;
        let s = self.utf8(b)?;
        self.push(Obj::Str(s));
        Ok(())
    }

    fn pairs(&self, items: Vec<Id>) -> Result<Vec<(Id, Id)>> {
        if !items.len().is_multiple_of(2) {
            return Err(self.err("odd number of items for a dict"));
        }
        Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
    }

    fn list_mut(&mut self, id: Id) -> Result<&mut Vec<Id>> {
        let kind = self.objs[id].kind();
        match &mut self.objs[id] {
            Obj::List(items) => Ok(items),
            _ => Err(fmt_err(format!(
                "pickle offset {}: can only append to a list, not to {kind}",
                self.op_pos
            ))),
        }
    }

    fn dict_mut(&mut self, id: Id) -> Result<&mut Vec<(Id, Id)>> {
        let kind = self.objs[id].kind();
        match &mut self.objs[id] {
            Obj::Dict { items, .. } => Ok(items),
            _ => Err(fmt_err(format!(
                "pickle offset {}: can only set items of a dict, not of {kind}",
                self.op_pos
            ))),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<()> {
        match Global::resolve(module, name) {
            Some(g) => {
                self.push(Obj::Global(g));
                Ok(())
            }
            None => Err(Error::unsupported(format!(
                "pickle offset {}: refused the global `{module}.{name}`: a state dict may name \
                 only {ALLOWED_GLOBALS}; nothing is imported or called",
                self.op_pos
            ))),
        }
    }

    fn reduce(&mut self) -> Result<()> {
        let args = self.pop()?;
        let func = self.top()?;
        let Obj::Global(g) = self.objs[func] else {
            return Err(self.err(format!(
                "REDUCE calls {}, which is not a callable of the allow-list",
                self.objs[func].kind()
            )));
        };
        let Obj::Tuple(args) = &self.objs[args] else {
            return Err(self.err(format!(
                "REDUCE arguments of {} are {}, not a tuple",
                g.name(),
                self.objs[args].kind()
            )));
        };
        // No allowed callable takes more than 7 arguments: refuse before copying, so that one
        // long tuple reused by many REDUCEs costs nothing.
        if args.len() > MAX_ARGS {
            return Err(self.err(format!(
                "{} called with {} arguments (at most {MAX_ARGS} are meaningful)",
                g.name(),
                args.len()
            )));
        }
        let args = args.clone();
        let result = match g {
            Global::OrderedDict => {
                if !args.is_empty() {
                    return Err(Error::unsupported(format!(
                        "pickle offset {}: collections.OrderedDict called with {} arguments; \
                         only OrderedDict() is supported",
                        self.op_pos,
                        args.len()
                    )));
                }
                Obj::Dict {
                    ordered: true,
                    items: Vec::new(),
                }
            }
            Global::RebuildTensorV2 | Global::RebuildTensor => {
                let fname = g.name();
                let (min, max) = if g == Global::RebuildTensor {
                    (4, 4)
                } else {
                    (6, 7)
                };
                if args.len() < min || args.len() > max {
                    return Err(self.err(format!(
                        "{fname} takes {min}..={max} arguments, got {}",
                        args.len()
                    )));
                }
                let Obj::Storage(storage) = self.objs[args[0]] else {
                    return Err(self.err(format!(
                        "{fname}: argument 1 (storage) is {}, not a storage",
                        self.objs[args[0]].kind()
                    )));
                };
                let offset = self.uint_arg(args[1], &fname, "2 (storage_offset)")?;
                let shape = self.dims_arg(args[2], &fname, "3 (size)")?;
                let stride = self.dims_arg(args[3], &fname, "4 (stride)")?;
                if shape.len() != stride.len() {
                    return Err(self.err(format!(
                        "{fname}: size has {} dimensions but stride has {}",
                        shape.len(),
                        stride.len()
                    )));
                }
                if args.len() > 4 {
                    if !matches!(self.objs[args[4]], Obj::Bool(_)) {
                        return Err(self.err(format!(
                            "{fname}: argument 5 (requires_grad) is {}, not a bool",
                            self.objs[args[4]].kind()
                        )));
                    }
                    // backward_hooks: an (empty) OrderedDict by convention; hooks are never saved.
                    if !matches!(self.objs[args[5]], Obj::Dict { .. }) {
                        return Err(self.err(format!(
                            "{fname}: argument 6 (backward_hooks) is {}, not a dict",
                            self.objs[args[5]].kind()
                        )));
                    }
                }
                if args.len() == 7 {
                    self.check_tensor_metadata(args[6])?;
                }
                self.tensors.push(TensorRef {
                    storage,
                    offset,
                    shape,
                    stride,
                });
                Obj::Tensor(self.tensors.len() - 1)
            }
            Global::RebuildParameter => {
                if args.len() != 3 {
                    return Err(self.err(format!(
                        "torch._utils._rebuild_parameter takes 3 arguments, got {}",
                        args.len()
                    )));
                }
                let Obj::Tensor(t) = self.objs[args[0]] else {
                    return Err(self.err(format!(
                        "torch._utils._rebuild_parameter: argument 1 (data) is {}, not a tensor",
                        self.objs[args[0]].kind()
                    )));
                };
                Obj::Tensor(t)
            }
            Global::StorageType(_) => {
                return Err(Error::unsupported(format!(
                "pickle offset {}: {} may only appear in a storage's persistent id, not be called",
                self.op_pos,
                g.name()
            )))
            }
        };
        // REDUCE replaces the callable with its result.
        let n = self.stack.len();
        self.stack[n - 1] = self.objs.len();
        self.objs.push(result);
        Ok(())
    }

    /// `_rebuild_tensor_v2`'s optional metadata: `torch._utils.get_tensor_metadata`, which holds
    /// the conj/neg bits of complex views. Accepted when every flag is false.
    fn check_tensor_metadata(&self, id: Id) -> Result<()> {
        let Obj::Dict { items, .. } = &self.objs[id] else {
            return Err(self.err(format!(
                "tensor metadata (argument 7) is {}, not a dict",
                self.objs[id].kind()
            )));
        };
        if items.len() > MAX_METADATA {
            return Err(Error::unsupported(format!(
                "pickle offset {}: tensor metadata has {} entries (torch writes at most conj and neg)",
                self.op_pos,
                items.len()
            )));
        }
        for &(k, v) in items {
            if !matches!(self.objs[v], Obj::Bool(false)) {
                let key = match self.objs[k] {
                    Obj::Str(s) => s.to_string(),
                    ref o => o.kind().to_string(),
                };
                return Err(Error::unsupported(format!(
                    "pickle offset {}: tensor metadata `{key}` is set (a conjugate or negative \
                     view); ferrollm reads plain tensors only",
                    self.op_pos
                )));
            }
        }
        Ok(())
    }

    fn uint_arg(&self, id: Id, fname: &str, what: &str) -> Result<u64> {
        match self.objs[id] {
            Obj::Int(v) if v >= 0 => Ok(v as u64),
            Obj::Int(v) => Err(self.err(format!("{fname}: argument {what} is negative ({v})"))),
            ref o => Err(self.err(format!(
                "{fname}: argument {what} is {}, not an int",
                o.kind()
            ))),
        }
    }

    fn dims_arg(&self, id: Id, fname: &str, what: &str) -> Result<Vec<u64>> {
        let items = match &self.objs[id] {
            Obj::Tuple(items) | Obj::List(items) => items,
            o => {
                return Err(self.err(format!(
                    "{fname}: argument {what} is {}, not a tuple",
                    o.kind()
                )))
            }
        };
        if items.len() > MAX_DIMS {
            return Err(Error::unsupported(format!(
                "pickle offset {}: {fname}: argument {what} has {} dimensions, more than {MAX_DIMS}",
                self.op_pos,
                items.len()
            )));
        }
        items
            .iter()
            .map(|&i| self.uint_arg(i, fname, what))
            .collect()
    }

    fn build(&mut self) -> Result<()> {
        let _state = self.pop()?;
        let inst = self.top()?;
        match self.objs[inst] {
            // `OrderedDict.__reduce__` carries the instance __dict__ (a state dict's `_metadata`,
            // the per-module version numbers): torch's weights-only unpickler sets it as
            // attributes; the tensors do not depend on it, so it is dropped.
            Obj::Dict { ordered: true, .. } => Ok(()),
            ref o => Err(Error::unsupported(format!(
                "pickle offset {}: BUILD on {} is not allowed (only an OrderedDict's attributes \
                 may be set)",
                self.op_pos,
                o.kind()
            ))),
        }
    }

    /// BINPERSID: `('storage', torch.<T>Storage, key, location, numel)` → a storage reference.
    fn persistent_load(&mut self) -> Result<()> {
        let pid = self.pop()?;
        let Obj::Tuple(items) = &self.objs[pid] else {
            return Err(self.err(format!(
                "persistent id is {}, not a ('storage', type, key, location, numel) tuple",
                self.objs[pid].kind()
            )));
        };
        if items.len() != 5 {
            let head = items.first().map(|&i| &self.objs[i]);
            if let Some(Obj::Str(typename)) = head {
                if *typename != "storage" {
                    return Err(Error::unsupported(format!(
                        "pickle offset {}: persistent id of type `{typename}`; only 'storage' is \
                         supported",
                        self.op_pos
                    )));
                }
            }
            return Err(self.err(format!(
                "persistent id has {} fields; a storage's is ('storage', torch.<Type>Storage, \
                 key, location, numel)",
                items.len()
            )));
        }
        let fields: Vec<&Obj<'a>> = items.iter().map(|&i| &self.objs[i]).collect();
        let (dtype, key, numel) = match fields.as_slice() {
            [Obj::Str("storage"), Obj::Global(Global::StorageType(d)), Obj::Str(key), Obj::Str(_location), Obj::Int(numel)] => {
                (*d, *key, *numel)
            }
            [Obj::Str(typename), ..] if *typename != "storage" => {
                return Err(Error::unsupported(format!(
                    "pickle offset {}: persistent id of type `{typename}`; only 'storage' is \
                     supported",
                    self.op_pos
                )))
            }
            _ => {
                return Err(self.err(format!(
                    "persistent id is not ('storage', torch.<Type>Storage, key, location, numel): \
                     it has {} fields ({})",
                    fields.len(),
                    fields
                        .iter()
                        .map(|o| o.kind())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        let numel = u64::try_from(numel)
            .map_err(|_| self.err(format!("storage `{key}` has a negative size ({numel})")))?;
        let idx = match self.storage_by_key.get(key) {
            Some(&idx) => {
                let s = &self.storages[idx];
                if s.dtype != dtype || s.numel != numel {
                    return Err(self.err(format!(
                        "storage `{key}` is referenced as {} × {} and as {numel} × {}",
                        s.numel,
                        s.dtype.name(),
                        dtype.name()
                    )));
                }
                idx
            }
            None => {
                self.storages.push(StorageRef {
                    key: key.to_string(),
                    dtype,
                    numel,
                });
                self.storage_by_key.insert(key, self.storages.len() - 1);
                self.storages.len() - 1
            }
        };
        self.push(Obj::Storage(idx));
        Ok(())
    }

    /// Checks that the root is a flat `{name: tensor}` dict and collects it.
    fn finish(self, root: Id) -> Result<StateDict> {
        let Obj::Dict { items, .. } = &self.objs[root] else {
            return Err(Error::unsupported(format!(
                "the pickle holds {}, not a state dict ({{name: tensor}})",
                self.objs[root].kind()
            )));
        };
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        let mut tensors = Vec::with_capacity(items.len());
        for &(k, v) in items {
            let Obj::Str(name) = self.objs[k] else {
                return Err(fmt_err(format!(
                    "a state dict key is {}, not a string",
                    self.objs[k].kind()
                )));
            };
            let Obj::Tensor(t) = self.objs[v] else {
                return Err(Error::unsupported(format!(
                    "state dict entry `{name}` is {}, not a tensor (ferrollm reads flat \
                     {{name: tensor}} state dicts)",
                    self.objs[v].kind()
                )));
            };
            if !seen.insert(name) {
                return Err(fmt_err(format!(
                    "state dict has two entries named `{name}`"
                )));
            }
            tensors.push((name.to_string(), self.tensors[t].clone()));
        }
        Ok(StateDict {
            storages: self.storages,
            tensors,
        })
    }
}
