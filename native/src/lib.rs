//! Native typing core of esa-enricher.
//!
//! The pure-Python parser (`enricher/core/parsing/`) is the reference: this module types only the lines it is
//! sure to type exactly as the Python fast path does, and *declines* everything else, which the Python
//! parser then handles. Declined are: lines with any byte outside printable ASCII (Python's `\s`, `\d`,
//! `str.strip()` and `int()` are Unicode-aware, the rules here are not), envelopes other than the two fast
//! shapes (RFC 3164 with host and tag, native file lines), file headers, native lines inside syslog, bodies
//! no rule types, CEF, numbers of 19 digits or more, and records longer than the configured limit.
//!
//! The body rules are not written here: `Typer` is built from the Python tables (`enricher.accel.native.
//! rule_tables()`): the patterns of `shapes.py` keyed by their dispatch words, the level and month names, the
//! declined body prefixes, the kind and field of a `MID n` line no rule types. The two fast envelopes are
//! matched by hand here (`fast_bsd`, `fast_native`): the tables carry the Python patterns they implement, and
//! `Typer::new` refuses tables whose envelopes are not those (`FAST_BSD_SHAPE`), so an envelope edited in
//! Python makes the core step aside instead of splitting lines differently. What is shared and what is not:
//! docs/decisions/native-core.md. Event times stay with the Python `TimeResolver` (read through the public
//! `TimeResolver.stamp_cache` and `Parser.clocks`, see `Times`), and events are instances of the Python
//! `Event` class.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString, PyTuple};
use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

/// The Python patterns `fast_bsd` and `fast_native` implement, `{levels}` standing for the level names
/// (`envelope.FAST_BSD_SHAPE`, `FAST_NATIVE_SHAPE`; the level names themselves come with the tables).
const FAST_BSD_SHAPE: &str = r"(?:<\d{1,3}>)?([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?!\d{4} )([^\s:]+) ([^\s:\[\]]+)(?:\[\d+\])?: {levels}:(?: +|$)(.*)";
const FAST_NATIVE_SHAPE: &str =
    r"([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d \d{4}) {levels}:(?: +|$)(.*)";
/// Python's `re.S` and `re.I`; `re.U` is implied for str patterns. Any other flag refuses the table.
const RE_IGNORECASE: u32 = 2;
const RE_UNICODE: u32 = 32;
const RE_DOTALL: u32 = 16;
/// Longest digit string parsed here (i64 holds any 18-digit number); longer ones are declined.
const MAX_DIGITS: usize = 18;
const MAX_CACHED_NAMES: usize = 4096;
const RECENT_NAMES: usize = 8;

/// FNV-1a: the maps here are keyed by a line's first words and host names — short, trusted-size keys
/// looked up several times per line, where SipHash's DoS resistance buys nothing and costs ~5 % of a line.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type Map<V> = HashMap<Vec<u8>, V, BuildHasherDefault<Fnv>>;

enum Conv {
    Str,
    Int,
    Rids,
}

enum Role {
    Mid,
    Icid,
    Dcid,
    Field {
        key: Py<PyString>,
        conv: Conv,
        dedupe: bool,
    },
}

struct Rule {
    kind: Py<PyString>,
    rx: Regex,
    locs: CaptureLocations,
    roles: Vec<(usize, Role)>,
}

/// What typing a body gave: `None` from `type_body` means "declined".
struct Typed {
    kind: Py<PyAny>,
    mid: Option<i64>,
    icid: Option<i64>,
    dcid: Option<i64>,
    data: Option<Py<PyDict>>,
}

fn parse_int(v: &[u8]) -> Option<i64> {
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some(if neg { -n } else { n })
}

fn as_str(v: &[u8]) -> &str {
    debug_assert!(printable(v));
    // SAFETY: only printable-ASCII lines reach the typing code (`type_line` checks `printable` first), and
    // every slice of ASCII is valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(v) }
}

/// A str from printable-ASCII bytes, made directly as a compact ASCII string (PyString::new would decode
/// UTF-8 and scan for non-ASCII again: half the cost of a typed line's strings).
fn ascii_str<'py>(py: Python<'py>, v: &[u8]) -> Bound<'py, PyString> {
    debug_assert!(printable(v));
    // SAFETY: PyUnicode_New(n, 127) returns a new compact ASCII string of n characters (or NULL with an
    // exception set), whose data is n writable bytes plus the NUL it already holds; `v` is n ASCII bytes.
    unsafe {
        let obj = pyo3::ffi::PyUnicode_New(v.len() as pyo3::ffi::Py_ssize_t, 127);
        if obj.is_null() {
            drop(PyErr::take(py)); // out of memory: clear it and let the safe path try (and raise)
            return PyString::new(py, as_str(v));
        }
        std::ptr::copy_nonoverlapping(
            v.as_ptr(),
            pyo3::ffi::PyUnicode_DATA(obj).cast::<u8>(),
            v.len(),
        );
        Bound::from_owned_ptr(py, obj).cast_into_unchecked()
    }
}

fn printable(b: &[u8]) -> bool {
    // No short-circuit: the fold vectorises, and lines are short.
    b.iter().fold(true, |ok, &c| ok & (0x20..0x7f).contains(&c))
}

fn strip_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' '] = b {
        b = rest;
    }
    b
}

fn is_upper(c: u8) -> bool {
    c.is_ascii_uppercase()
}
fn is_lower(c: u8) -> bool {
    c.is_ascii_lowercase()
}
fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// `[A-Z][a-z]{2}` at `b[i..]`.
fn word3(b: &[u8], i: usize) -> bool {
    b.len() >= i + 3 && is_upper(b[i]) && is_lower(b[i + 1]) && is_lower(b[i + 2])
}

/// `\d\d:\d\d:\d\d` at `b[i..]`.
fn hms(b: &[u8], i: usize) -> bool {
    b.len() >= i + 8
        && is_digit(b[i])
        && is_digit(b[i + 1])
        && b[i + 2] == b':'
        && is_digit(b[i + 3])
        && is_digit(b[i + 4])
        && b[i + 5] == b':'
        && is_digit(b[i + 6])
        && is_digit(b[i + 7])
}

/// `(Info|Warning|…):(?: +|$)` at `b[i..]`, the names as the tables give them: (level index, body start).
fn level_at(b: &[u8], i: usize, levels: &[Vec<u8>]) -> Option<(usize, usize)> {
    let rest = &b[i.min(b.len())..];
    for (n, name) in levels.iter().enumerate() {
        if rest.len() > name.len() && rest.starts_with(name) && rest[name.len()] == b':' {
            let mut j = i + name.len() + 1;
            if j == b.len() {
                return Some((n, j));
            }
            if b[j] != b' ' {
                return None;
            }
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            return Some((n, j));
        }
    }
    None
}

/// `enricher.core.sessions.session.body_sum`: Adler-32 of the line from the first occurrence of its level word
/// on (the whole line when there is none). `b` is printable ASCII, so its byte offsets are `str.find`'s.
fn body_sum(b: &[u8], level: &[u8]) -> u32 {
    // The level word is a few bytes, met a few dozen bytes in: the candidates by its first byte (`memchr`)
    // cost less than `memmem::find`, which builds a searcher for the needle on every call (~500
    // instructions a line, as much as the checksum itself). Level names are never empty (`Typer::new`).
    let from = memchr::memchr_iter(level[0], b)
        .find(|&i| b[i..].starts_with(level))
        .unwrap_or(0);
    adler2::adler32_slice(&b[from..])
}

enum Envelope {
    /// RFC 3164 with host and tag: stamp, host, tag (ranges), level, body start.
    Bsd {
        stamp: (usize, usize),
        host: (usize, usize),
        tag: (usize, usize),
        level: usize,
        body: usize,
    },
    /// A native file line: stamp range, level, body start.
    Native {
        stamp: (usize, usize),
        level: usize,
        body: usize,
    },
}

/// The envelope parser's `_FAST_BSD` (`(?:<\d{1,3}>)?Mmm dd hh:mm:ss host tag[pid]: Level: body`); `Err`
/// when the line is one Python would treat differently from a plain mismatch (the `(?!\d{4} )` guard).
fn fast_bsd(b: &[u8], levels: &[Vec<u8>]) -> Result<Option<Envelope>, ()> {
    let mut p = 0;
    if b.first() == Some(&b'<') {
        let mut q = 1;
        while q < b.len() && q <= 3 && is_digit(b[q]) {
            q += 1;
        }
        if q > 1 && q < b.len() && b[q] == b'>' {
            p = q + 1;
        }
    }
    // [A-Z][a-z]{2} [ \d]\d hh:mm:ss
    if !(word3(b, p)
        && b.len() > p + 16
        && b[p + 3] == b' '
        && (b[p + 4] == b' ' || is_digit(b[p + 4]))
        && is_digit(b[p + 5])
        && b[p + 6] == b' '
        && hms(b, p + 7)
        && b[p + 15] == b' ')
    {
        return Ok(None);
    }
    let stamp = (p, p + 15);
    let h = p + 16;
    if b.len() >= h + 5 && b[h..h + 4].iter().all(|&c| is_digit(c)) && b[h + 4] == b' ' {
        return Err(()); // a year after the stamp: the general path's business
    }
    let mut i = h;
    while i < b.len() && b[i] != b' ' && b[i] != b':' {
        i += 1;
    }
    if i == h || i >= b.len() || b[i] != b' ' {
        return Ok(None);
    }
    let host = (h, i);
    let t = i + 1;
    i = t;
    while i < b.len() && !matches!(b[i], b' ' | b':' | b'[' | b']') {
        i += 1;
    }
    if i == t {
        return Ok(None);
    }
    let tag = (t, i);
    if i < b.len() && b[i] == b'[' {
        let d = i + 1;
        i = d;
        while i < b.len() && is_digit(b[i]) {
            i += 1;
        }
        if i == d || i >= b.len() || b[i] != b']' {
            return Ok(None);
        }
        i += 1;
    }
    if !(b.len() > i + 1 && b[i] == b':' && b[i + 1] == b' ') {
        return Ok(None);
    }
    Ok(level_at(b, i + 2, levels).map(|(level, body)| Envelope::Bsd {
        stamp,
        host,
        tag,
        level,
        body,
    }))
}

/// `_FAST_NATIVE`: `Www Mmm [ \d]?\d hh:mm:ss yyyy Level: body`.
fn fast_native(b: &[u8], levels: &[Vec<u8>]) -> Option<Envelope> {
    if !(word3(b, 0) && b.len() > 8 && b[3] == b' ' && word3(b, 4) && b[7] == b' ') {
        return None;
    }
    // `[ \d]?\d ` — the two-character form first, as the regex's greedy `?` does.
    let p = 8;
    let day_end = if b.len() > p + 2
        && (b[p] == b' ' || is_digit(b[p]))
        && is_digit(b[p + 1])
        && b[p + 2] == b' '
    {
        p + 2
    } else if b.len() > p + 1 && is_digit(b[p]) && b[p + 1] == b' ' {
        p + 1
    } else {
        return None;
    };
    let t = day_end + 1;
    if !(hms(b, t)
        && b.len() > t + 13
        && b[t + 8] == b' '
        && b[t + 9..t + 13].iter().all(|&c| is_digit(c))
        && b[t + 13] == b' ')
    {
        return None;
    }
    let stamp = (0, t + 13);
    level_at(b, t + 14, levels).map(|(level, body)| Envelope::Native { stamp, level, body })
}

/// The fields of the Python `Event`, in the order `type_line` produces them.
const EVENT_FIELDS: [&str; 12] = [
    "kind",
    "appliance",
    "ts",
    "level",
    "raw",
    "mid",
    "icid",
    "dcid",
    "data",
    "tag",
    "ts_inferred",
    "body_sum",
];

/// Makes `Event` instances. Calling the class runs its Python `__init__` (a frame and twelve attribute
/// stores, about a tenth of a typed line's cost). When `Event` is a plain `__slots__` class with exactly
/// these fields (in any order), the instance is allocated and each value stored in its slot, at the offset
/// its member descriptor declares — what `__init__` does through those descriptors, without the frame or
/// the twelve descriptor calls. Anything else about `Event` falls back to the call.
struct EventMaker {
    cls: Py<PyAny>,
    /// Byte offsets of the slots, in `EVENT_FIELDS` order.
    offsets: Option<Vec<usize>>,
}

impl EventMaker {
    fn new(py: Python<'_>, cls: Py<PyAny>) -> PyResult<Self> {
        let bound = cls.bind(py);
        let declared: Option<Vec<String>> = bound
            .getattr("__slots__")
            .ok()
            .and_then(|s| s.extract().ok());
        let plain = declared.is_some_and(|mut d| {
            d.sort_unstable();
            let mut want = EVENT_FIELDS;
            want.sort_unstable();
            d.iter().map(String::as_str).eq(want)
        }) && bound.getattr("__init__")?.getattr("__code__").is_ok() // a Python __init__, nothing native
            && bound.getattr("__new__")?.is(&py.get_type::<pyo3::types::PyAny>().getattr("__new__")?);
        let mut offsets = None;
        if plain {
            // SAFETY: `cls` is a type object (it has __slots__ and __new__ above); its basic size bounds
            // the slots, and each checked descriptor is a member_descriptor, whose object is a
            // PyMemberDescrObject (PyDescrObject header, then the PyMemberDef pointer).
            let basicsize =
                unsafe { (*cls.as_ptr().cast::<pyo3::ffi::PyTypeObject>()).tp_basicsize } as usize;
            let mut out = Vec::with_capacity(EVENT_FIELDS.len());
            for name in EVENT_FIELDS {
                let d = bound.getattr(name)?;
                if d.get_type().name()? != "member_descriptor" {
                    return Ok(EventMaker { cls, offsets: None });
                }
                let def = unsafe {
                    let descr = d.as_ptr().cast::<pyo3::ffi::PyDescrObject>();
                    *(descr.add(1).cast::<*const pyo3::ffi::PyMemberDef>())
                };
                let (kind, offset, flags) =
                    unsafe { ((*def).type_code, (*def).offset, (*def).flags) };
                let ptr = std::mem::size_of::<*mut pyo3::ffi::PyObject>();
                if kind != pyo3::ffi::Py_T_OBJECT_EX
                    || flags & pyo3::ffi::Py_READONLY != 0
                    || offset < 0
                    || offset as usize + ptr > basicsize
                {
                    return Ok(EventMaker { cls, offsets: None });
                }
                out.push(offset as usize);
            }
            offsets = Some(out);
        }
        Ok(EventMaker { cls, offsets })
    }

    fn make<'py>(
        &self,
        py: Python<'py>,
        values: [Bound<'py, PyAny>; 12],
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(offsets) = &self.offsets else {
            return self.cls.bind(py).call1(PyTuple::new(py, values)?);
        };
        // SAFETY: `cls` is a heap type whose instances have these twelve object slots at these offsets
        // (checked in `new`); tp_alloc returns a new, zeroed, GC-tracked instance or NULL with an exception
        // set. Each slot is empty (NULL), and receives a new reference, as a member descriptor's set would.
        unsafe {
            let tp = self.cls.as_ptr().cast::<pyo3::ffi::PyTypeObject>();
            let alloc = (*tp).tp_alloc.unwrap_or(pyo3::ffi::PyType_GenericAlloc);
            let obj = alloc(tp, 0);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (offset, value) in offsets.iter().zip(values) {
                *obj.cast::<u8>()
                    .add(*offset)
                    .cast::<*mut pyo3::ffi::PyObject>() = value.into_ptr();
            }
            Ok(Bound::from_owned_ptr(py, obj))
        }
    }
}

#[pyclass]
struct Typer {
    events: EventMaker,
    limit: usize,
    mid_rules: Map<Vec<Rule>>,
    icid_routes: Map<Vec<Rule>>,
    icid_rules: Vec<Rule>,
    dcid_rules: Vec<Rule>,
    other_rules: Map<Vec<Rule>>,
    /// The level names (bytes, to match) and the same as Python strings (an event's `level`).
    level_names: Vec<Vec<u8>>,
    levels: Vec<Py<PyString>>,
    months: Vec<Vec<u8>>,
    declined_bodies: Vec<Vec<u8>>,
    detail: Py<PyString>,
    mid_unrecognized: Py<PyString>,
    names: Map<Py<PyString>>,
    recent: Vec<(Vec<u8>, Py<PyString>)>,
}

fn compile_rule(
    py: Python<'_>,
    spec: &Bound<'_, PyAny>,
    int_fields: &[String],
    quoted: &[String],
) -> PyResult<Rule> {
    let (kind, pattern, flags, groups): (String, String, u32, Vec<(String, usize)>) =
        spec.extract()?;
    if flags & !(RE_IGNORECASE | RE_UNICODE | RE_DOTALL) != 0 {
        return Err(PyValueError::new_err(format!(
            "{kind}: unsupported regex flags {flags}"
        )));
    }
    // Every haystack typed here has no trailing space (bodies are stripped; `type_body` declines the one
    // way a MID rest could end in one), so a final `\s*$` can only match empty: `$` alone is equivalent,
    // and lets the engine run many patterns one-pass instead of backtracking.
    let pattern = match pattern.strip_suffix(r"\s*$") {
        Some(head) if !head.ends_with('\\') => format!("{head}$"), // not an escaped backslash's `\\s*$`
        _ => pattern.clone(),
    };
    let rx = RegexBuilder::new(&format!("^(?:{pattern})"))
        .unicode(false)
        .dot_matches_new_line(flags & RE_DOTALL != 0)
        .case_insensitive(flags & RE_IGNORECASE != 0)
        .build()
        .map_err(|e| PyValueError::new_err(format!("{kind}: {e}")))?;
    let names: Vec<Option<&str>> = rx.capture_names().collect();
    let mut roles = Vec::with_capacity(groups.len());
    if names.len() != groups.len() + 1 {
        return Err(PyValueError::new_err(format!(
            "{kind}: group count differs from Python's"
        )));
    }
    let mut sorted = groups;
    sorted.sort_by_key(|(_, idx)| *idx);
    for (name, idx) in sorted {
        if names.get(idx).copied().flatten() != Some(name.as_str()) {
            return Err(PyValueError::new_err(format!(
                "{kind}: group {name} is not group {idx} here"
            )));
        }
        let role = match name.as_str() {
            "mid" => Role::Mid,
            "icid" => Role::Icid,
            "dcid" => Role::Dcid,
            _ => {
                let dedupe = quoted.contains(&name);
                let out = if dedupe { "value" } else { name.as_str() };
                let conv = if int_fields.contains(&name) {
                    Conv::Int
                } else if name == "rids" {
                    Conv::Rids
                } else {
                    Conv::Str
                };
                Role::Field {
                    key: PyString::intern(py, out).unbind(),
                    conv,
                    dedupe,
                }
            }
        };
        roles.push((idx, role));
    }
    let locs = rx.capture_locations();
    Ok(Rule {
        kind: PyString::intern(py, &kind).unbind(),
        rx,
        locs,
        roles,
    })
}

fn compile_list(
    py: Python<'_>,
    specs: &Bound<'_, PyAny>,
    ints: &[String],
    quoted: &[String],
) -> PyResult<Vec<Rule>> {
    specs
        .try_iter()?
        .map(|s| compile_rule(py, &s?, ints, quoted))
        .collect()
}

fn compile_map(
    py: Python<'_>,
    specs: &Bound<'_, PyDict>,
    ints: &[String],
    quoted: &[String],
) -> PyResult<Map<Vec<Rule>>> {
    let mut out = Map::default();
    for (word, list) in specs.iter() {
        let word: String = word.extract()?;
        out.insert(word.into_bytes(), compile_list(py, &list, ints, quoted)?);
    }
    Ok(out)
}

/// First rule of `rules` matching `hay`, extracted as the Python extractor does; `None` = declined.
fn first_match(py: Python<'_>, rules: &mut [Rule], hay: &[u8], mid: Option<i64>) -> Option<Typed> {
    for rule in rules.iter_mut() {
        if rule.rx.captures_read(&mut rule.locs, hay).is_some() {
            return extract(py, rule, hay, mid);
        }
    }
    None
}

fn extract(py: Python<'_>, rule: &Rule, hay: &[u8], mut mid: Option<i64>) -> Option<Typed> {
    let (mut icid, mut dcid) = (None, None);
    let mut data: Option<Bound<'_, PyDict>> = None;
    for (idx, role) in &rule.roles {
        let Some((s, e)) = rule.locs.get(*idx) else {
            continue;
        };
        let v = &hay[s..e];
        match role {
            Role::Mid => mid = Some(parse_int(v)?),
            Role::Icid => icid = Some(parse_int(v)?),
            Role::Dcid => dcid = Some(parse_int(v)?),
            Role::Field { key, conv, dedupe } => {
                let d = data.get_or_insert_with(|| PyDict::new(py));
                if *dedupe && d.contains(key).ok()? {
                    continue;
                }
                let value: Bound<'_, PyAny> = match conv {
                    Conv::Str => ascii_str(py, v).into_any(),
                    Conv::Int => parse_int(v)?.into_pyobject(py).ok()?.into_any(),
                    Conv::Rids => {
                        let list = PyList::empty(py);
                        let compact: Vec<u8> = v.iter().copied().filter(|&c| c != b' ').collect();
                        for part in compact.split(|&c| c == b',').filter(|p| !p.is_empty()) {
                            list.append(parse_int(part)?).ok()?;
                        }
                        list.into_any()
                    }
                };
                d.set_item(key, value).ok()?;
            }
        }
    }
    Some(Typed {
        kind: rule.kind.clone_ref(py).into_any(),
        mid,
        icid,
        dcid,
        data: data.filter(|d| !d.is_empty()).map(Bound::unbind),
    })
}

impl Typer {
    /// `shapes.type_body` for a stripped, printable-ASCII body; `None` = declined.
    fn type_body(&mut self, py: Python<'_>, body: &[u8]) -> Option<Typed> {
        if let Some(after) = body.strip_prefix(b"MID ") {
            let sp = after.iter().position(|&c| c == b' ');
            let mut num = match sp {
                Some(i) => &after[..i],
                None => after,
            };
            let comma = num.ends_with(b",");
            if comma {
                num = &num[..num.len() - 1];
            }
            if num.is_empty() || !num.iter().all(|&c| is_digit(c)) {
                return None; // Python: `unparsed`
            }
            let mid = parse_int(num)?;
            let mut rest: Vec<u8> = Vec::new();
            if comma {
                rest.extend_from_slice(b", ");
            }
            if let Some(i) = sp {
                let mut r = &after[i + 1..];
                while let [b' ', tail @ ..] = r {
                    r = tail;
                }
                rest.extend_from_slice(r);
            }
            if rest.ends_with(b" ") {
                return None; // `MID n, ` alone: the rules' final `\s*$` were compiled as `$` (see compile_rule)
            }
            let mut word = rest.split(|&c| c == b' ').next().unwrap_or(b"");
            if let Some(i) = word.iter().position(|&c| c == b'(') {
                word = &word[..i];
            }
            if let Some(rules) = self.mid_rules.get_mut(word) {
                for rule in rules.iter_mut() {
                    if rule.rx.captures_read(&mut rule.locs, &rest).is_some() {
                        return extract(py, rule, &rest, Some(mid));
                    }
                }
            }
            let d = PyDict::new(py);
            d.set_item(&self.detail, ascii_str(py, &rest)).ok()?;
            return Some(Typed {
                kind: self.mid_unrecognized.clone_ref(py).into_any(),
                mid: Some(mid),
                icid: None,
                dcid: None,
                data: Some(d.unbind()),
            });
        }
        if body.starts_with(b"ICID ") {
            let third = body.splitn(4, |&c| c == b' ').nth(2);
            let routed = match third {
                Some(w) => self.icid_routes.get_mut(&w.to_ascii_lowercase()),
                None => None,
            };
            return match routed {
                Some(rules) => first_match(py, rules, body, None),
                None => first_match(py, &mut self.icid_rules, body, None),
            };
        }
        if body.starts_with(b"DCID ") {
            return first_match(py, &mut self.dcid_rules, body, None);
        }
        let word = body.split(|&c| c == b' ').next().unwrap_or(b"");
        // No rule, or none matching: Python tries CEF or says `unparsed` — both declined here.
        first_match(py, self.other_rules.get_mut(word)?, body, None)
    }

    fn name(&mut self, py: Python<'_>, b: &[u8]) -> Py<PyString> {
        // Hosts and tags are few: the last few seen are compared directly before the map is hashed.
        if let Some(i) = self.recent.iter().position(|(k, _)| k.as_slice() == b) {
            return self.recent[i].1.clone_ref(py);
        }
        let s = self.name_in_map(py, b);
        if self.recent.len() == RECENT_NAMES {
            self.recent.pop();
        }
        self.recent.insert(0, (b.to_vec(), s.clone_ref(py)));
        s
    }

    fn name_in_map(&mut self, py: Python<'_>, b: &[u8]) -> Py<PyString> {
        if let Some(s) = self.names.get(b) {
            return s.clone_ref(py);
        }
        if self.names.len() >= MAX_CACHED_NAMES {
            self.names.clear();
        }
        let s = ascii_str(py, b).unbind();
        self.names.insert(b.to_vec(), s.clone_ref(py));
        s
    }

    /// Type one record (no trailing newline); `None` = declined. `raw` is the str object to keep as the
    /// event's raw text when it is the whole of `b`.
    fn type_line<'py>(
        &mut self,
        py: Python<'py>,
        t: &Times<'py>,
        b: &[u8],
        raw: Option<&Bound<'py, PyString>>,
        default: &Bound<'py, PyString>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if b.is_empty() || b.len() > self.limit || !printable(b) {
            return Ok(None);
        }
        let env = match fast_bsd(b, &self.level_names) {
            Err(()) => return Ok(None),
            Ok(Some(env)) => env,
            Ok(None) => match fast_native(b, &self.level_names) {
                Some(env) => env,
                None => return Ok(None),
            },
        };
        let (body_start, level) = match env {
            Envelope::Bsd { level, body, .. } | Envelope::Native { level, body, .. } => {
                (body, level)
            }
        };
        let body = &b[body_start..];
        let native_inside =
            body.len() >= 7 && body[3] == b' ' && self.months.iter().any(|m| m[..] == body[4..7]);
        if self.declined_bodies.iter().any(|p| body.starts_with(p))
            || (matches!(env, Envelope::Bsd { .. }) && native_inside)
        {
            return Ok(None); // a header whose offset applies first, or a native line inside syslog
        }
        let Some(typed) = self.type_body(py, strip_spaces(body)) else {
            return Ok(None);
        };
        let (app, tag, stamp_range, stamp_fn) = match env {
            Envelope::Bsd {
                stamp, host, tag, ..
            } => {
                let app = self.name(py, &b[host.0..host.1]).into_bound(py);
                let tag = self.name(py, &b[tag.0..tag.1]).into_bound(py).into_any();
                (app, tag, stamp, &t.bsd_stamp)
            }
            Envelope::Native { stamp, .. } => (
                default.clone(),
                py.None().into_bound(py),
                stamp,
                &t.native_stamp,
            ),
        };
        let stamp_bytes = &b[stamp_range.0..stamp_range.1];
        let (ts, repeated) = match t.recall(&app, stamp_bytes) {
            Some(v) => (v, true),
            None => {
                let stamp = ascii_str(py, stamp_bytes);
                let key = PyTuple::new(py, [app.as_any(), stamp.as_any()])?;
                let v = match t.stamps.get_item(&key)? {
                    Some(v) => v,
                    None => stamp_fn.call1((&app, &stamp))?,
                };
                t.remember(&app, stamp_bytes, &v);
                (v, false)
            }
        };
        if ts.is_none() {
            // A stamp that reads as no time: the record is dated by `Parser._inferred` (the appliance's clock,
            // or the stamp of the record it copies), which needs its memory of unstamped records.
            return Ok(None);
        }
        if !repeated {
            // The parser's clock per appliance is the NEWEST stamp read, not the last (`Parser.clocks`): a
            // copy or a late line must not move it back. A repeated stamp was compared by the previous line.
            let newer = match t.last_ts.get_item(&app)? {
                Some(clock) => ts.extract::<f64>()? > clock.extract::<f64>()?,
                None => true,
            };
            if newer {
                t.last_ts.set_item(&app, &ts)?;
            }
        }
        let raw = match raw {
            Some(s) => s.clone(),
            None => ascii_str(py, b),
        };
        let id =
            |v: Option<i64>| -> PyResult<Bound<'py, PyAny>> { Ok(v.into_pyobject(py)?.into_any()) };
        let values = [
            typed.kind.into_bound(py),
            app.into_any(),
            ts,
            self.levels[level].clone_ref(py).into_bound(py).into_any(),
            raw.into_any(),
            id(typed.mid)?,
            id(typed.icid)?,
            id(typed.dcid)?,
            typed
                .data
                .map_or_else(|| py.None().into_bound(py), |d| d.into_bound(py).into_any()),
            tag,
            PyBool::new(py, false).to_owned().into_any(), // ts_inferred: declined above
            body_sum(b, &self.level_names[level]).into_pyobject(py)?.into_any(),
        ];
        Ok(Some(self.events.make(py, values)?))
    }
}

/// The parser's time state, read once per call (the Python objects may be replaced between calls) through its
/// public interface (`Parser.clocks`, `TimeResolver.stamp_cache`, `bsd_stamp`, `native_stamp`), and a
/// memo of each appliance's last stamp within the call: lines of one appliance come several per second, and
/// a repeated stamp needs neither the key tuple nor the dict lookup. Exact: the memo lives for one call
/// (a zone change comes from a header line, which is declined, so it happens between calls), holds only
/// the appliance's previous line, and is dropped if the resolver's cache shrank (was cleared) meanwhile.
struct Times<'py> {
    stamps: Bound<'py, PyDict>,
    last_ts: Bound<'py, PyDict>,
    bsd_stamp: Bound<'py, PyAny>,
    native_stamp: Bound<'py, PyAny>,
    memo: std::cell::RefCell<Vec<Memo<'py>>>,
}

struct Memo<'py> {
    app: Bound<'py, PyString>,
    stamp: Vec<u8>,
    ts: Bound<'py, PyAny>,
    cache_len: usize,
}

impl<'py> Times<'py> {
    fn of(parser: &Bound<'py, PyAny>) -> PyResult<Self> {
        let times = parser.getattr("times")?;
        Ok(Times {
            stamps: times.getattr("stamp_cache")?.cast_into::<PyDict>()?,
            last_ts: parser.getattr("clocks")?.cast_into::<PyDict>()?,
            bsd_stamp: times.getattr("bsd_stamp")?,
            native_stamp: times.getattr("native_stamp")?,
            memo: std::cell::RefCell::new(Vec::new()),
        })
    }

    /// The time of this appliance's previous line in this call, when it had the same stamp.
    fn recall(&self, app: &Bound<'py, PyString>, stamp: &[u8]) -> Option<Bound<'py, PyAny>> {
        let memo = self.memo.borrow();
        let m = memo.iter().find(|m| m.app.is(app))?;
        (m.stamp == stamp && self.stamps.len() >= m.cache_len).then(|| m.ts.clone())
    }

    fn remember(&self, app: &Bound<'py, PyString>, stamp: &[u8], ts: &Bound<'py, PyAny>) {
        let mut memo = self.memo.borrow_mut();
        let cache_len = self.stamps.len();
        if let Some(m) = memo.iter_mut().find(|m| m.app.is(app)) {
            m.stamp.clear();
            m.stamp.extend_from_slice(stamp);
            m.ts = ts.clone();
            m.cache_len = cache_len;
        } else if memo.len() < 64 {
            memo.push(Memo {
                app: app.clone(),
                stamp: stamp.to_vec(),
                ts: ts.clone(),
                cache_len,
            });
        }
    }
}

#[pymethods]
impl Typer {
    /// `Typer(event_cls, tables, limit)`: `tables` as made by `enricher.accel.native.rule_tables()`.
    #[new]
    fn new(
        py: Python<'_>,
        event_cls: Py<PyAny>,
        tables: &Bound<'_, PyDict>,
        limit: usize,
    ) -> PyResult<Self> {
        let get = |k: &str| -> PyResult<Bound<'_, PyAny>> {
            tables
                .get_item(k)?
                .ok_or_else(|| PyValueError::new_err(format!("rule tables lack {k}")))
        };
        let ints: Vec<String> = get("int_fields")?.extract()?;
        let quoted: Vec<String> = get("quoted")?.extract()?;
        let names: Vec<String> = get("levels")?.extract()?;
        if names.is_empty()
            || names
                .iter()
                .any(|l| l.is_empty() || !l.bytes().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(PyValueError::new_err(format!("level names {names:?}: not ASCII words")));
        }
        let months: Vec<String> = get("months")?.extract()?;
        if months
            .iter()
            .any(|m| !(m.len() == 3 && m.bytes().all(|c| c.is_ascii_alphabetic())))
        {
            return Err(PyValueError::new_err(format!("month names {months:?}: not three ASCII letters")));
        }
        let envelopes = get("envelopes")?;
        for (name, implemented) in [("bsd", FAST_BSD_SHAPE), ("native", FAST_NATIVE_SHAPE)] {
            let given: String = envelopes.get_item(name)?.extract()?;
            if given != implemented {
                return Err(PyValueError::new_err(format!(
                    "the {name} envelope is now {given:?}, native/src/lib.rs implements {implemented:?}: \
                     change fast_{name} (and its shape constant) to match"
                )));
            }
        }
        let declined: Vec<String> = get("declined_bodies")?.extract()?;
        let (fallback_kind, fallback_field): (String, String) = get("mid_fallback")?.extract()?;
        Ok(Typer {
            events: EventMaker::new(py, event_cls)?,
            limit,
            mid_rules: compile_map(py, get("mid")?.cast::<PyDict>()?, &ints, &quoted)?,
            icid_routes: compile_map(py, get("icid_routes")?.cast::<PyDict>()?, &ints, &quoted)?,
            icid_rules: compile_list(py, &get("icid")?, &ints, &quoted)?,
            dcid_rules: compile_list(py, &get("dcid")?, &ints, &quoted)?,
            other_rules: compile_map(py, get("other")?.cast::<PyDict>()?, &ints, &quoted)?,
            levels: names
                .iter()
                .map(|l| PyString::intern(py, l).unbind())
                .collect(),
            level_names: names.into_iter().map(String::into_bytes).collect(),
            months: months.into_iter().map(String::into_bytes).collect(),
            declined_bodies: declined.into_iter().map(String::into_bytes).collect(),
            detail: PyString::intern(py, &fallback_field).unbind(),
            mid_unrecognized: PyString::intern(py, &fallback_kind).unbind(),
            names: Map::default(),
            recent: Vec::with_capacity(RECENT_NAMES),
        })
    }

    /// Type `lines[start:]` (physical lines, trailing CR/LF ignored) until the first line declined:
    /// returns (events, index of that line, or len(lines)).
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        parser: &Bound<'py, PyAny>,
        lines: &Bound<'py, PyList>,
        start: usize,
        default: &Bound<'py, PyString>,
    ) -> PyResult<(Bound<'py, PyList>, usize)> {
        let t = Times::of(parser)?;
        let out = PyList::empty(py);
        let n = lines.len();
        let mut i = start;
        while i < n {
            let item = lines.get_item(i)?;
            let Ok(line) = item.cast::<PyString>() else {
                break;
            };
            let full = line.to_str()?.as_bytes();
            let mut b = full;
            while let [rest @ .., b'\r' | b'\n'] = b {
                b = rest;
            }
            let raw = if b.len() == full.len() {
                Some(line)
            } else {
                None
            };
            match self.type_line(py, &t, b, raw, default)? {
                Some(ev) => out.append(ev)?,
                None => break,
            }
            i += 1;
        }
        Ok((out, i))
    }

    /// True when events are made through their slots (see `EventMaker`), False when by calling the class.
    #[getter]
    fn fast_events(&self) -> bool {
        self.events.offsets.is_some()
    }

    /// `one` for `texts[start:]` (complete records, e.g. Kafka values), each with its own default appliance
    /// (`keys[i]`, or the parser's `default_appliance` when None), until the first record declined:
    /// returns (events, index of that record, or len(texts)).
    fn run_records<'py>(
        &mut self,
        py: Python<'py>,
        parser: &Bound<'py, PyAny>,
        texts: &Bound<'py, PyList>,
        keys: &Bound<'py, PyList>,
        start: usize,
    ) -> PyResult<(Bound<'py, PyList>, usize)> {
        let t = Times::of(parser)?;
        let fallback = parser
            .getattr("default_appliance")?
            .cast_into::<PyString>()?;
        let out = PyList::empty(py);
        let n = texts.len().min(keys.len());
        let mut i = start;
        while i < n {
            let item = texts.get_item(i)?;
            let Ok(text) = item.cast::<PyString>() else {
                break;
            };
            let key = keys.get_item(i)?;
            let default = match key.cast::<PyString>() {
                Ok(k) if k.to_str()?.is_empty() => fallback.clone(), // `appliance or default`, as parse_record
                Ok(k) => k.clone(),
                Err(_) if key.is_none() => fallback.clone(),
                Err(_) => break,
            };
            match self.type_line(py, &t, text.to_str()?.as_bytes(), Some(text), &default)? {
                Some(ev) => out.append(ev)?,
                None => break,
            }
            i += 1;
        }
        Ok((out, i))
    }

    /// Type one complete record (no newline inside); None when declined.
    fn one<'py>(
        &mut self,
        py: Python<'py>,
        parser: &Bound<'py, PyAny>,
        text: &Bound<'py, PyString>,
        default: &Bound<'py, PyString>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let t = Times::of(parser)?;
        let b = text.to_str()?.as_bytes();
        self.type_line(py, &t, b, Some(text), default)
    }
}

#[pymodule]
fn esa_enricher_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Typer>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
