//! Mutation fuzzing of the two parsers that take untrusted text: `event::parse_message`
//! (every SQS message body) and `Policy::from_toml` (operator-written policy files).
//!
//! Stable Rust, no extra crates: a seeded splitmix64 generator, a corpus read from the
//! repository's own fixtures, byte-level mutators (bit flips, "interesting" bytes,
//! inserts, deletes, duplicated ranges, truncation, splices from another corpus file) and
//! structure-aware ones (JSON values and TOML values replaced, retyped, deleted, nested
//! deeply; TOML tables duplicated). Each case applies 1–4 mutations to one corpus file and
//! runs the parser inside `catch_unwind`; a panic writes the input to
//! `target/fuzz-crashes/<target>-<case>.txt` (and its backtrace next to it) and fails the
//! test. An error must also carry a non-empty reason.
//!
//! Knobs (environment):
//!   REDRESS_FUZZ_CASES  cases per target (default 20000 events, 2000 policies: see
//!                       DEFAULT_POLICY_CASES)
//!   REDRESS_FUZZ_SEED   seed, decimal or 0x-hex (default 0x5EED_2ED2_E55F_0220)
//!   REDRESS_FUZZ_TRACE  if set, write each input to target/fuzz-crashes/<target>-last.txt
//!                       before running it: a crash that does not unwind (stack overflow,
//!                       abort) kills the process, and this file then holds its input.
//!
//!   REDRESS_FUZZ_CASE   run only this case number (every case derives its own generator
//!                       from the seed and its number, so a reported case replays alone)
//!
//! Run: `cargo test -p redress --test fuzz -- --nocapture`

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

use redress::event::parse_message;
use redress::policy::Policy;

/// Default cases per target. `Policy::from_toml` costs about 3–4 ms per valid policy in a
/// debug build (each rule's glob compiles to a regex; the TOML is parsed twice), about
/// 100 times `parse_message`, so its default is smaller to keep `cargo test` quick.
const DEFAULT_EVENT_CASES: u64 = 20_000;
const DEFAULT_POLICY_CASES: u64 = 2_000;
const DEFAULT_SEED: u64 = 0x5EED_2ED2_E55F_0220;
/// Stop recording after this many crashing inputs; the test fails either way.
const MAX_CRASHES: usize = 20;

// ---------------------------------------------------------------------------------------
// PRNG

/// splitmix64: tiny, fast, good enough to drive mutations, and deterministic everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator for one case: independent of every other case.
    fn for_case(seed: u64, case: u64) -> Rng {
        let mut r = Rng(seed ^ case.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        ((self.next_u64() >> 11) % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

// ---------------------------------------------------------------------------------------
// Corpus

fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn load(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths
        .iter()
        .map(|p| fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())))
        .collect()
}

fn event_corpus() -> Vec<Vec<u8>> {
    let mut paths = Vec::new();
    files_under(&repo_root().join("tests/fixtures/events"), &mut paths);
    assert!(!paths.is_empty(), "no event fixtures found");
    load(&paths)
}

fn policy_corpus() -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(repo_root().join("infra/policies"))
        .expect("reading infra/policies")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no policy files found");
    load(&paths)
}

// ---------------------------------------------------------------------------------------
// Byte-level mutators

const INTERESTING: &[u8] = &[
    0, 0xff, b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b'\n', 0x80, 0xc3,
];

/// A random non-empty range of `len` bytes (`len > 0`), at most `max` long.
fn some_range(rng: &mut Rng, len: usize, max: usize) -> (usize, usize) {
    let start = rng.below(len);
    let n = rng.range(1, (len - start).min(max));
    (start, start + n)
}

fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    if data.is_empty() {
        let n = rng.range(1, 8);
        data.extend((0..n).map(|_| rng.byte()));
        return;
    }
    let len = data.len();
    match rng.below(8) {
        // bit flip
        0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        // interesting byte
        1 => {
            let i = rng.below(len);
            data[i] = *rng.pick(INTERESTING);
        }
        // insert random bytes (sometimes interesting ones)
        2 => {
            let at = rng.below(len + 1);
            let n = rng.range(1, 16);
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.chance(2) {
                        *rng.pick(INTERESTING)
                    } else {
                        rng.byte()
                    }
                })
                .collect();
            data.splice(at..at, bytes);
        }
        // delete a range
        3 => {
            let (a, b) = some_range(rng, len, 64);
            data.drain(a..b);
        }
        // duplicate a range
        4 => {
            let (a, b) = some_range(rng, len, 256);
            let copy = data[a..b].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, copy);
        }
        // truncate
        5 => {
            data.truncate(rng.below(len));
        }
        // splice a range from another corpus file
        6 => {
            let other = rng.pick(corpus);
            if !other.is_empty() {
                let (a, b) = some_range(rng, other.len(), 256);
                let at = rng.below(len + 1);
                let end = (at + rng.below(b - a + 1)).min(len);
                data.splice(at..end, other[a..b].iter().copied());
            }
        }
        // overwrite a run of bytes with one interesting byte
        _ => {
            let (a, b) = some_range(rng, len, 8);
            let v = *rng.pick(INTERESTING);
            data[a..b].iter_mut().for_each(|x| *x = v);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared value generators

/// Replacement strings: huge, unicode, control characters, injection-ish, empty.
fn nasty_string(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => "A".repeat(rng.range(1_024, 32_768)),
        1 => String::new(),
        2 => " \t ".to_string(),
        3 => "é🚀\u{202e}gnp.exe\u{200b}\u{feff}𝔘𝔫𝔦".to_string(),
        4 => "\u{0}\u{1}\u{7}\u{8}\n\r\t\u{1b}[31m\u{7f}\u{85}\u{2028}".to_string(),
        5 => "; rm -rf / #".to_string(),
        6 => "$(reboot)`id`${IFS}|nc evil 1".to_string(),
        7 => "../../../../etc/passwd\u{0}.json".to_string(),
        8 => "' OR 1=1 --\"><script>alert(1)</script>".to_string(),
        9 => "{resource_id}{account_id}{{}}{".to_string(),
        10 => "*{[?**/]}\\".to_string(),
        _ => "ü".repeat(rng.range(1, 2_000)),
    }
}

// ---------------------------------------------------------------------------------------
// JSON structure-aware mutators

use serde_json::Value as J;

const MAX_WALK_DEPTH: usize = 32;

/// How many nodes (root included) a walk down to `MAX_WALK_DEPTH` visits.
fn json_count(v: &J, depth: usize) -> usize {
    1 + match v {
        _ if depth >= MAX_WALK_DEPTH => 0,
        J::Object(m) => m.values().map(|c| json_count(c, depth + 1)).sum(),
        J::Array(a) => a.iter().map(|c| json_count(c, depth + 1)).sum(),
        _ => 0,
    }
}

/// The `n`th node of that walk (pre-order), or the count left over when `v` has fewer.
fn json_nth(v: &mut J, n: usize, depth: usize) -> Result<&mut J, usize> {
    if n == 0 {
        return Ok(v);
    }
    let mut n = n - 1;
    if depth >= MAX_WALK_DEPTH {
        return Err(n);
    }
    let children: Box<dyn Iterator<Item = &mut J>> = match v {
        J::Object(m) => Box::new(m.values_mut()),
        J::Array(a) => Box::new(a.iter_mut()),
        _ => return Err(n),
    };
    for child in children {
        match json_nth(child, n, depth + 1) {
            Ok(found) => return Ok(found),
            Err(left) => n = left,
        }
    }
    Err(n)
}

fn extreme_number(rng: &mut Rng) -> J {
    match rng.below(10) {
        0 => J::from(i64::MIN),
        1 => J::from(i64::MAX),
        2 => J::from(u64::MAX),
        3 => J::from(-1),
        4 => J::from(0),
        5 => J::from(9_007_199_254_740_993u64),
        6 => J::from(f64::MAX),
        7 => J::from(f64::MIN_POSITIVE),
        8 => J::from(-0.0f64),
        _ => J::from(1e-300f64),
    }
}

fn any_json(rng: &mut Rng) -> J {
    match rng.below(8) {
        0 => J::Null,
        1 => J::Bool(rng.chance(2)),
        2 => extreme_number(rng),
        3 => J::String(nasty_string(rng)),
        4 => J::Array(vec![]),
        5 => J::Object(serde_json::Map::new()),
        6 => J::Array(vec![J::String(nasty_string(rng))]),
        _ => serde_json::json!({ "evil": nasty_string(rng) }),
    }
}

/// Wraps `v` in `depth` arrays or objects. Past 128 levels serde_json refuses to parse.
fn nest_json(rng: &mut Rng, mut v: J) -> J {
    let depth = rng.range(1, 140);
    let arrays = rng.chance(2);
    for _ in 0..depth {
        v = if arrays {
            J::Array(vec![v])
        } else {
            let mut m = serde_json::Map::new();
            m.insert("a".into(), v);
            J::Object(m)
        };
    }
    v
}

fn mutate_json_value(rng: &mut Rng, root: &mut J) {
    let count = json_count(root, 0);
    let at = rng.below(count);
    let op = rng.below(7);
    // The "swap" mutation's source, taken before borrowing the target node.
    let other = if op == 6 {
        json_nth(root, rng.below(count), 0).ok().cloned()
    } else {
        None
    };
    let Ok(node) = json_nth(root, at, 0) else {
        return;
    };
    match op {
        // replace by kind
        0 | 1 => {
            *node = match node {
                J::String(s) => {
                    // SNS wraps the Config payload as a JSON string: mutate inside it too.
                    let inner = if s.starts_with('{') {
                        serde_json::from_str::<J>(s).ok()
                    } else {
                        None
                    };
                    if let Some(mut inner @ J::Object(_)) = inner {
                        if rng.chance(2) {
                            mutate_json_value(rng, &mut inner);
                            J::String(inner.to_string())
                        } else {
                            J::String(nasty_string(rng))
                        }
                    } else {
                        J::String(nasty_string(rng))
                    }
                }
                J::Number(_) => extreme_number(rng),
                J::Bool(b) => J::Bool(!*b),
                _ => any_json(rng),
            }
        }
        // change the type
        2 => *node = any_json(rng),
        // delete a key / an element
        3 => match node {
            J::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(rng.below(m.len())).cloned().expect("key");
                m.remove(&k);
            }
            J::Array(a) if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            _ => *node = J::Null,
        },
        // add a key / duplicate an element
        4 => match node {
            J::Object(m) => {
                m.insert(nasty_string(rng).chars().take(64).collect(), any_json(rng));
            }
            J::Array(a) if !a.is_empty() => {
                let e = a[rng.below(a.len())].clone();
                a.push(e);
            }
            _ => *node = J::Array(vec![node.take()]),
        },
        // nest deeply
        5 => *node = nest_json(rng, node.take()),
        // swap with another node's value
        _ => {
            if let Some(v) = other {
                *node = v;
            }
        }
    }
}

fn serialize_json(rng: &mut Rng, v: &J) -> Vec<u8> {
    if rng.chance(4) {
        serde_json::to_vec_pretty(v)
    } else {
        serde_json::to_vec(v)
    }
    .expect("serialising a Value")
}

/// Repeats one `"key": "value"` pair right after itself, with a different value
/// (`"dup-value"`), in compact or pretty JSON. `serde_json::Value` keeps the last of
/// duplicate keys; whichever wins, the parser must not panic.
fn duplicate_json_key(rng: &mut Rng, data: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(data).into_owned();
    // (end of the key's closing quote, start of the value's opening quote)
    let pairs: Vec<(usize, usize)> = text
        .match_indices("\":")
        .filter_map(|(i, _)| {
            let after = i + 2;
            let gap = text[after..].len() - text[after..].trim_start_matches(' ').len();
            text[after + gap..]
                .starts_with('"')
                .then_some((i, after + gap))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    let (key_end, value_start) = *rng.pick(&pairs);
    let Some(key_start) = text[..key_end].rfind('"') else {
        return;
    };
    let Some(value_end) = text[value_start + 1..]
        .find('"')
        .map(|i| value_start + 1 + i + 1)
    else {
        return;
    };
    let pair = &text[key_start..value_end];
    let dup = format!(
        "{}\"dup-{}",
        &text[key_start..value_start],
        &text[value_start + 1..value_end]
    );
    let mut out = text[..key_start].to_string();
    out.push_str(pair);
    out.push_str(", ");
    out.push_str(&dup);
    out.push_str(&text[value_end..]);
    *data = out.into_bytes();
}

// ---------------------------------------------------------------------------------------
// TOML structure-aware mutators

use toml::Value as T;

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn toml_paths(v: &T, here: Vec<Step>, depth: usize, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    if depth >= MAX_WALK_DEPTH {
        return;
    }
    match v {
        T::Table(t) => {
            for (k, child) in t {
                let mut p = here.clone();
                p.push(Step::Key(k.clone()));
                toml_paths(child, p, depth + 1, out);
            }
        }
        T::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let mut p = here.clone();
                p.push(Step::Index(i));
                toml_paths(child, p, depth + 1, out);
            }
        }
        _ => {}
    }
}

fn toml_at<'a>(v: &'a mut T, path: &[Step]) -> Option<&'a mut T> {
    path.iter().try_fold(v, |v, step| match (v, step) {
        (T::Table(t), Step::Key(k)) => t.get_mut(k),
        (T::Array(a), Step::Index(i)) => a.get_mut(*i),
        _ => None,
    })
}

fn extreme_toml_number(rng: &mut Rng) -> T {
    match rng.below(9) {
        0 => T::Integer(i64::MIN),
        1 => T::Integer(i64::MAX),
        2 => T::Integer(-1),
        3 => T::Integer(0),
        4 => T::Integer(65_536),
        5 => T::Float(f64::NAN),
        6 => T::Float(f64::INFINITY),
        7 => T::Float(-0.0),
        _ => T::Float(1e300),
    }
}

fn any_toml(rng: &mut Rng) -> T {
    match rng.below(9) {
        0 => T::Boolean(rng.chance(2)),
        1 => extreme_toml_number(rng),
        2 => T::String(nasty_string(rng)),
        3 => T::Array(vec![]),
        4 => T::Table(toml::Table::new()),
        5 => T::Array(vec![T::String(nasty_string(rng)), T::Integer(22)]),
        6 => "1979-05-27T07:32:00Z"
            .parse::<toml::value::Datetime>()
            .map(T::Datetime)
            .unwrap_or(T::Boolean(true)),
        7 => T::String(
            rng.pick(&["LOW", "MEDIUM", "HIGH", "CRITICAL", "auto", "notify", "x"])
                .to_string(),
        ),
        _ => {
            let mut t = toml::Table::new();
            t.insert("evil".into(), T::String(nasty_string(rng)));
            T::Table(t)
        }
    }
}

fn mutate_toml_value(rng: &mut Rng, root: &mut T) {
    let mut paths = Vec::new();
    toml_paths(root, Vec::new(), 0, &mut paths);
    let path = rng.pick(&paths).clone();
    let Some(node) = toml_at(root, &path) else {
        return;
    };
    match rng.below(6) {
        // replace by kind
        0 | 1 => {
            *node = match node {
                T::String(_) => T::String(nasty_string(rng)),
                T::Integer(_) | T::Float(_) => extreme_toml_number(rng),
                T::Boolean(b) => T::Boolean(!*b),
                _ => any_toml(rng),
            }
        }
        // change the type (the root must stay a table)
        2 if !path.is_empty() => *node = any_toml(rng),
        // delete a key / an element
        3 => match node {
            T::Table(t) if !t.is_empty() => {
                let k = t.keys().nth(rng.below(t.len())).cloned().expect("key");
                t.remove(&k);
            }
            T::Array(a) if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            _ => {}
        },
        // add a key / duplicate an element (a duplicated [[rule]] duplicates its id)
        4 => match node {
            T::Table(t) => {
                let key = rng
                    .pick(&[
                        "id", "severity", "mode", "action", "unknown", "ports", "fix",
                    ])
                    .to_string();
                t.insert(key, any_toml(rng));
            }
            T::Array(a) if !a.is_empty() => {
                let e = a[rng.below(a.len())].clone();
                a.push(e);
            }
            _ => {}
        },
        // nest in arrays
        _ if !path.is_empty() => {
            let mut v = node.clone();
            for _ in 0..rng.range(1, 64) {
                v = T::Array(vec![v]);
            }
            *node = v;
        }
        _ => {}
    }
}

/// Text-level TOML edits: duplicate a table (with its body) or a `key = value` line,
/// or nest an inline array deeply.
fn mutate_toml_text(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    let text = String::from_utf8_lossy(data).into_owned();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let headers: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with('['))
        .collect();
    let keys: Vec<usize> = (0..lines.len())
        .filter(|&i| {
            let l = lines[i].trim_start();
            !l.starts_with('#') && !l.starts_with('[') && l.contains('=')
        })
        .collect();
    let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    match rng.below(3) {
        0 if !headers.is_empty() => {
            let h = *rng.pick(&headers);
            let end = headers
                .iter()
                .copied()
                .find(|&i| i > h)
                .unwrap_or(lines.len());
            let mut block: String = lines[h..end].concat();
            if !block.ends_with('\n') {
                block.push('\n');
            }
            out.push(block);
        }
        1 if !keys.is_empty() => {
            let k = *rng.pick(&keys);
            let mut line = lines[k].to_string();
            if !line.ends_with('\n') {
                line.push('\n');
            }
            out.insert(rng.below(out.len() + 1), line);
        }
        _ if !keys.is_empty() => {
            let k = *rng.pick(&keys);
            let line = lines[k];
            if let Some(eq) = line.find('=') {
                let depth = rng.range(1, 200);
                let value = line[eq + 1..].trim_end();
                out[k] = format!(
                    "{}= {}{}{}\n",
                    &line[..eq],
                    "[".repeat(depth),
                    value,
                    "]".repeat(depth)
                );
            }
        }
        _ => return false,
    }
    *data = out.concat().into_bytes();
    true
}

// ---------------------------------------------------------------------------------------
// Driver

/// A corpus file, and its parsed tree when it parses (structure-aware mutations start
/// from a clone of the tree, so no case pays for parsing its seed again).
struct Entry {
    bytes: Vec<u8>,
    tree: Option<Tree>,
}

#[derive(Clone)]
enum Tree {
    Json(J),
    Toml(T),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Json,
    Toml,
}

fn entries(kind: Kind, files: Vec<Vec<u8>>) -> Vec<Entry> {
    files
        .into_iter()
        .map(|bytes| {
            let tree = match kind {
                Kind::Json => serde_json::from_slice::<J>(&bytes).ok().map(Tree::Json),
                Kind::Toml => std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| toml::from_str::<toml::Table>(s).ok())
                    .map(|t| Tree::Toml(T::Table(t))),
            };
            Entry { bytes, tree }
        })
        .collect()
}

/// One case's input: 1–4 mutations of one corpus file. The structure-aware ones come
/// first, on the parsed tree, which is then serialised once; the byte- and text-level
/// ones follow.
fn build_case(rng: &mut Rng, kind: Kind, corpus: &[Entry], raw: &[Vec<u8>]) -> Vec<u8> {
    let entry = rng.pick(corpus);
    let n = rng.range(1, 4);
    let structured = if entry.tree.is_some() {
        rng.below(n + 1)
    } else {
        0
    };
    let mut data = match &entry.tree {
        Some(tree) if structured > 0 => {
            let mut tree = tree.clone();
            match &mut tree {
                Tree::Json(v) => {
                    for _ in 0..structured {
                        mutate_json_value(rng, v);
                    }
                    serialize_json(rng, v)
                }
                Tree::Toml(v) => {
                    for _ in 0..structured {
                        mutate_toml_value(rng, v);
                    }
                    match toml::to_string(v) {
                        Ok(s) => s.into_bytes(),
                        Err(_) => entry.bytes.clone(),
                    }
                }
            }
        }
        _ => entry.bytes.clone(),
    };
    for _ in structured..n {
        if rng.chance(4) {
            match kind {
                // Duplicate keys survive neither parse nor serialise: made in the text.
                Kind::Json => duplicate_json_key(rng, &mut data),
                Kind::Toml => {
                    if !mutate_toml_text(rng, &mut data) {
                        mutate_bytes(rng, &mut data, raw);
                    }
                }
            }
        } else {
            mutate_bytes(rng, &mut data, raw);
        }
    }
    data
}

thread_local! {
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records the message and a backtrace of panics raised inside a fuzz case (instead of
/// printing one per case); panics elsewhere go to the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(Cell::get) {
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".into());
                let location = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                let text = format!(
                    "panicked at {location}:\n{payload}\n\nbacktrace:\n{}",
                    Backtrace::force_capture()
                );
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(s) => {
            let s = s.trim().replace('_', "");
            let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("{name}={s:?}: {e}"))
        }
        Err(_) => default,
    }
}

fn crash_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("fuzz-crashes")
}

/// The outcome of one input: `Ok(true)` accepted, `Ok(false)` rejected.
type Target = fn(&str) -> bool;

fn event_target(input: &str) -> bool {
    match parse_message(input) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                !e.to_string().trim().is_empty(),
                "rejected with an empty reason"
            );
            false
        }
    }
}

fn policy_target(input: &str) -> bool {
    match Policy::from_toml(input, "fuzz.toml") {
        Ok(_) => true,
        Err(e) => {
            assert!(!e.problems.is_empty(), "rejected with no problems listed");
            assert!(
                e.problems.iter().all(|p| !p.message.trim().is_empty()),
                "a problem with an empty message: {e}"
            );
            false
        }
    }
}

fn fuzz(name: &str, kind: Kind, raw: Vec<Vec<u8>>, target: Target, default_cases: u64) {
    install_panic_hook();
    let corpus = entries(kind, raw.clone());
    let seed = env_u64("REDRESS_FUZZ_SEED", DEFAULT_SEED);
    // REDRESS_FUZZ_CASE=N replays case N alone (from a crash report).
    let range = match std::env::var_os("REDRESS_FUZZ_CASE") {
        Some(_) => {
            let n = env_u64("REDRESS_FUZZ_CASE", 0);
            n..n + 1
        }
        None => 0..env_u64("REDRESS_FUZZ_CASES", default_cases),
    };
    let cases = range.end - range.start;
    let trace = std::env::var_os("REDRESS_FUZZ_TRACE").is_some();
    let dir = crash_dir();
    if trace {
        fs::create_dir_all(&dir).expect("creating the crash directory");
    }
    let started = Instant::now();
    let (mut accepted, mut rejected) = (0u64, 0u64);
    let mut crashes: Vec<(u64, PathBuf, String)> = Vec::new();
    let mut panics = 0u64;

    for case in range {
        let mut rng = Rng::for_case(seed, case);
        let data = build_case(&mut rng, kind, &corpus, &raw);
        let input = String::from_utf8_lossy(&data);
        if trace {
            fs::write(dir.join(format!("{name}-last.txt")), input.as_bytes())
                .expect("writing the trace file");
        }
        IN_CASE.with(|c| c.set(true));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| target(&input)));
        IN_CASE.with(|c| c.set(false));
        match outcome {
            Ok(true) => accepted += 1,
            Ok(false) => rejected += 1,
            Err(_) => {
                panics += 1;
                let report = LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_else(|| "(no panic report captured)".into());
                if crashes.len() < MAX_CRASHES {
                    fs::create_dir_all(&dir).expect("creating the crash directory");
                    let path = dir.join(format!("{name}-{case}.txt"));
                    fs::write(&path, input.as_bytes()).expect("writing the crashing input");
                    fs::write(path.with_extension("backtrace.txt"), &report)
                        .expect("writing the backtrace");
                    crashes.push((case, path, report));
                }
            }
        }
    }

    let elapsed = started.elapsed();
    println!(
        "fuzz {name}: {cases} cases (seed {seed:#018x}): {accepted} accepted, {rejected} rejected, \
         {panics} panics in {:.2}s",
        elapsed.as_secs_f64()
    );

    if let Some((case, path, report)) = crashes.first() {
        let mut msg = format!(
            "fuzz {name}: {panics} panic(s) with seed {seed:#018x} \
             (replay one with REDRESS_FUZZ_SEED={seed:#x} REDRESS_FUZZ_CASE=<case>); \
             inputs written:\n"
        );
        for (c, p, _) in &crashes {
            let _ = writeln!(msg, "  case {c}: {}", p.display());
        }
        let _ = write!(msg, "first (case {case}, {}):\n{report}", path.display());
        panic!("{msg}");
    }

    // A degenerate mutator (everything rejected, or nothing changed) is a failure too.
    if cases >= 1_000 {
        let floor = cases / 100;
        assert!(
            accepted >= floor && rejected >= floor,
            "fuzz {name}: the mutated corpus no longer exercises both outcomes \
             ({accepted} accepted, {rejected} rejected of {cases}; want at least {floor} each)"
        );
    }
}

#[test]
fn fuzz_parse_message() {
    fuzz(
        "event",
        Kind::Json,
        event_corpus(),
        event_target,
        DEFAULT_EVENT_CASES,
    );
}

#[test]
fn fuzz_policy_from_toml() {
    fuzz(
        "policy",
        Kind::Toml,
        policy_corpus(),
        policy_target,
        DEFAULT_POLICY_CASES,
    );
}

#[test]
fn bad_event_fixtures_are_rejected_with_a_reason() {
    let mut paths = Vec::new();
    files_under(&repo_root().join("tests/fixtures/events/bad"), &mut paths);
    assert!(!paths.is_empty(), "no bad event fixtures found");
    for path in &paths {
        let body =
            String::from_utf8_lossy(&fs::read(path).expect("reading a fixture")).into_owned();
        match parse_message(&body) {
            Ok(event) => panic!("{} was accepted: {event:?}", path.display()),
            Err(e) => assert!(
                !e.to_string().trim().is_empty(),
                "{} was rejected with an empty reason",
                path.display()
            ),
        }
    }
}

#[test]
fn rng_is_deterministic_and_spread() {
    let a: Vec<u64> = (0..4).map(|c| Rng::for_case(7, c).next_u64()).collect();
    let b: Vec<u64> = (0..4).map(|c| Rng::for_case(7, c).next_u64()).collect();
    assert_eq!(a, b);
    let mut r = Rng::new(1);
    let mut seen = [0usize; 8];
    for _ in 0..8_000 {
        seen[r.below(8)] += 1;
    }
    assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
}
