//! Property-based mutation fuzzing, with proptest, of the two parsers that take untrusted
//! text: `event::parse_message` (every SQS message body: parsing and validation) and
//! `Policy::from_toml` (operator-written policy files).
//!
//! Inputs are mutations of the repository's own files: every event fixture under
//! `tests/fixtures/events/` (the good ones and `bad/`) and `infra/policies/*.toml`. A case
//! is a proptest value ([`Case`]): which file, 1–4 edits, compact or pretty JSON. Edits:
//!
//! - structure-aware, on the parsed JSON or TOML tree: a value replaced by one of its own
//!   kind (nasty strings: huge, empty, control characters, unicode, injection-ish,
//!   plausible-looking ids; extreme numbers; the other boolean), replaced by a value of
//!   another type, a key or element removed, a key added or an element duplicated, a value
//!   nested deeply (JSON past serde_json's 128 levels), a value copied over another; also
//!   inside the JSON string SNS wraps Config's payload in;
//! - text-level: a JSON `"key": "value"` pair repeated with another value; a TOML table
//!   or `key = value` line duplicated, a TOML value nested in 1–200 inline arrays;
//! - byte-level: bit flips, "interesting" bytes, inserts, deletes, duplicated ranges,
//!   truncation, runs overwritten, splices from another file of the corpus.
//!
//! Tree edits come first and the tree is serialised once; text and byte edits follow.
//!
//! Nothing may panic, and:
//! - event: a rejection has a non-empty reason; an accepted event passes the checks of
//!   `redress::validate` again (resource id, type, account, region, rule name), its
//!   evaluation qualifier agrees with it, and an EventBridge event has an id and a time;
//! - policy: a rejection lists at least one problem, each with a non-empty message and,
//!   when it has a line, a line of the input; an accepted policy has rules, with unique
//!   ids and lines of the input;
//! - each target both accepts and rejects at least 1% of its cases (from 1000 cases on):
//!   mutators that break everything, or nothing, fail the test.
//!
//! A failing case is shrunk by proptest to a minimal one; its input is written to
//! `<target dir>/fuzz-crashes/<event|policy>-minimal.txt` (the panic and its backtrace to
//! `…-minimal.backtrace.txt`) and the case's seed to `<event|policy>.proptest-regressions`
//! in the same directory, which every later run replays first.
//!
//! Run: `cargo test -p redress --test fuzz -- --nocapture` (20,000 event and 2,000 policy
//! cases, the quick run in `make test`), or `REDRESS_FUZZ_CASES=100000 cargo test -p
//! redress --test fuzz -- --nocapture` (what `make chaos` runs). Each target prints one
//! line: cases, accepted, rejected, time.
//!
//! Knobs (environment):
//!   REDRESS_FUZZ_CASES  cases per target (default 20000 events, 2000 policies: a policy
//!                       load costs about 100 event parses in a debug build)
//!   REDRESS_FUZZ_SEED   proptest RNG seed, decimal or 0x-hex (default 0x5EED_2ED2_E55F_0220):
//!                       runs are deterministic, and a failure replays with the same seed
//!   REDRESS_FUZZ_TRACE  if set, write each input to fuzz-crashes/<event|policy>-last.txt
//!                       before running it: a crash that does not unwind (stack overflow,
//!                       abort) kills the process, and this file then holds its input
//!   PROPTEST_MAX_SHRINK_TIME, PROPTEST_MAX_SHRINK_ITERS, PROPTEST_VERBOSE: as in proptest
//!                       (shrinking stops after 60 s unless PROPTEST_MAX_SHRINK_TIME is set)

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::fs;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Instant;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::ValueTree;
use proptest::test_runner::{
    FileFailurePersistence, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner,
};
use serde_json::{json, Value as J};
use toml::Value as T;

use redress::event::{parse_message, ComplianceEvent, Delivery};
use redress::policy::Policy;
use redress::validate;

const DEFAULT_EVENT_CASES: u32 = 20_000;
const DEFAULT_POLICY_CASES: u32 = 2_000;
const DEFAULT_SEED: u64 = 0x5EED_2ED2_E55F_0220;
/// Shrinking stops after this long (ms) unless PROPTEST_MAX_SHRINK_TIME says otherwise.
const DEFAULT_MAX_SHRINK_MS: u32 = 60_000;
/// Tree walks (picking a node to edit) stop this deep.
const MAX_WALK_DEPTH: usize = 32;

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

/// The files a target mutates, and each one's parsed tree when it parses (tree edits
/// start from a clone, so no case pays for parsing its file again).
struct Corpus<Tree> {
    raw: Vec<Vec<u8>>,
    trees: Vec<Option<Tree>>,
}

impl<Tree> Corpus<Tree> {
    fn load(paths: &[PathBuf], parse: impl Fn(&[u8]) -> Option<Tree>) -> Self {
        let raw: Vec<Vec<u8>> = paths
            .iter()
            .map(|p| fs::read(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())))
            .collect();
        let trees = raw.iter().map(|b| parse(b)).collect();
        Corpus { raw, trees }
    }
}

fn event_corpus() -> Corpus<J> {
    let mut paths = Vec::new();
    files_under(&repo_root().join("tests/fixtures/events"), &mut paths);
    assert!(!paths.is_empty(), "no event fixtures found");
    Corpus::load(&paths, |b| serde_json::from_slice(b).ok())
}

fn policy_corpus() -> Corpus<T> {
    let mut paths: Vec<PathBuf> = fs::read_dir(repo_root().join("infra/policies"))
        .expect("reading infra/policies")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no policy files found");
    Corpus::load(&paths, |b| {
        let table = toml::from_str::<toml::Table>(std::str::from_utf8(b).ok()?).ok()?;
        Some(T::Table(table))
    })
}

// ---------------------------------------------------------------------------------------
// A case

/// One fuzz case: which corpus file, the edits made to it, and (JSON) whether a mutated
/// tree is written pretty-printed.
#[derive(Debug, Clone)]
struct Case<E> {
    file: Index,
    edits: Vec<E>,
    pretty: bool,
}

fn case<E: Debug + Clone>(edit: impl Strategy<Value = E>) -> impl Strategy<Value = Case<E>> {
    (any::<Index>(), vec(edit, 1..=4), prop::bool::weighted(0.25)).prop_map(
        |(file, edits, pretty)| Case {
            file,
            edits,
            pretty,
        },
    )
}

/// An edit of a case: of the file's parsed tree, or of its text.
trait Edit: Debug + Clone {
    type Tree: Clone;
    fn is_tree(&self) -> bool;
    /// Makes a tree edit (a text edit does nothing here).
    fn edit_tree(&self, tree: &mut Self::Tree);
    /// Makes a text edit (a tree edit does nothing here).
    fn edit_text(&self, data: &mut Vec<u8>, corpus: &[Vec<u8>]);
    /// The tree's text, when it has one.
    fn write(tree: &Self::Tree, pretty: bool) -> Option<Vec<u8>>;
}

/// The text of a case: its tree edits made on the file's tree, written out once, then
/// its text edits in order. A file that does not parse, or a tree that cannot be
/// written, keeps its own text.
fn input<E: Edit>(corpus: &Corpus<E::Tree>, case: &Case<E>) -> Vec<u8> {
    let i = case.file.index(corpus.raw.len());
    let mut data = match &corpus.trees[i] {
        Some(tree) if case.edits.iter().any(E::is_tree) => {
            let mut tree = tree.clone();
            case.edits.iter().for_each(|e| e.edit_tree(&mut tree));
            E::write(&tree, case.pretty).unwrap_or_else(|| corpus.raw[i].clone())
        }
        _ => corpus.raw[i].clone(),
    };
    case.edits
        .iter()
        .for_each(|e| e.edit_text(&mut data, &corpus.raw));
    data
}

// ---------------------------------------------------------------------------------------
// Byte-level edits

const INTERESTING: &[u8] = &[
    0, 0xff, b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b'\n', 0x80, 0xc3,
];

/// A byte-level edit at `at`, an [`Index`] resolved against the input's length.
#[derive(Debug, Clone)]
struct ByteEdit {
    at: Index,
    op: ByteOp,
}

/// What a [`ByteEdit`] does. Lengths stop at the end of the input.
#[derive(Debug, Clone)]
enum ByteOp {
    /// Flips one bit.
    FlipBit(u8),
    /// Overwrites one byte.
    SetByte(u8),
    /// Inserts bytes.
    Insert(Vec<u8>),
    /// Deletes bytes.
    Delete(usize),
    /// Inserts a copy of `len` bytes at `to`.
    Duplicate { len: usize, to: Index },
    /// Cuts the input short.
    Truncate,
    /// Replaces up to as many bytes as `piece` has (`over` picks how many) with it.
    Splice { piece: Piece, over: Index },
    /// Overwrites a run of bytes.
    Fill { len: usize, byte: u8 },
}

/// Up to `len` bytes at `at` of corpus file `file`.
#[derive(Debug, Clone)]
struct Piece {
    file: Index,
    at: Index,
    len: usize,
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    select(INTERESTING)
}

/// Half of them interesting. (A tuple: a union costs more to generate.)
fn some_byte() -> impl Strategy<Value = u8> {
    (any::<bool>(), interesting_byte(), any::<u8>()).prop_map(|(i, a, b)| if i { a } else { b })
}

fn byte_edit() -> BoxedStrategy<ByteEdit> {
    use ByteOp::*;
    let ix = any::<Index>;
    let op = prop_oneof![
        (0u8..8).prop_map(FlipBit),
        interesting_byte().prop_map(SetByte),
        vec(some_byte(), 1..=16).prop_map(Insert),
        (1usize..=64).prop_map(Delete),
        (1usize..=256, ix()).prop_map(|(len, to)| Duplicate { len, to }),
        Just(Truncate),
        (ix(), ix(), 1usize..=256, ix()).prop_map(|(file, at, len, over)| Splice {
            piece: Piece { file, at, len },
            over
        }),
        (1usize..=8, interesting_byte()).prop_map(|(len, byte)| Fill { len, byte }),
    ];
    (ix(), op).prop_map(|(at, op)| ByteEdit { at, op }).boxed()
}

/// A non-empty range of at most `max` bytes starting at `at` in `0..len` (`len > 0`).
fn span(len: usize, at: Index, max: usize) -> Range<usize> {
    let start = at.index(len);
    start..start + max.min(len - start)
}

impl ByteEdit {
    fn apply(&self, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        use ByteOp::*;
        let len = data.len();
        // Where bytes go in: 0..=len.
        let gap = self.at.index(len + 1);
        match &self.op {
            Insert(bytes) => {
                data.splice(gap..gap, bytes.iter().copied());
            }
            Splice { piece, over } => {
                let other = piece.file.get(corpus);
                if !other.is_empty() {
                    let piece = &other[span(other.len(), piece.at, piece.len)];
                    let end = (gap + over.index(piece.len() + 1)).min(len);
                    data.splice(gap..end, piece.iter().copied());
                }
            }
            // An empty input gets one byte.
            FlipBit(bit) if len == 0 => data.push(1 << bit),
            SetByte(byte) | Fill { byte, .. } if len == 0 => data.push(*byte),
            _ if len == 0 => {}
            FlipBit(bit) => data[self.at.index(len)] ^= 1 << bit,
            SetByte(byte) => data[self.at.index(len)] = *byte,
            Delete(n) => {
                data.drain(span(len, self.at, *n));
            }
            Duplicate { len: n, to } => {
                let copy = data[span(len, self.at, *n)].to_vec();
                let to = to.index(len + 1);
                data.splice(to..to, copy);
            }
            Truncate => data.truncate(self.at.index(len)),
            Fill { len: n, byte } => data[span(len, self.at, *n)].fill(*byte),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Values shared by the JSON and TOML edits

/// A string strategy from a regex, compiled once (a `&str` strategy compiles per case).
fn regex(re: &str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(re).unwrap_or_else(|e| panic!("{re}: {e}"))
}

/// Replacement strings: huge, empty, unicode, control characters, injection-ish,
/// arbitrary characters, and plausible identifiers (valid, just past a limit, or with one
/// bad character) that keep a mutated event close to acceptance.
///
/// Few alternatives, each of them picked among many: generating from a union costs a
/// clone of the runner for every alternative before the one picked.
fn nasty_string() -> BoxedStrategy<String> {
    prop_oneof![
        9 => select(NASTY_STRINGS).prop_map(str::to_string),
        2 => (any::<bool>(), 1usize..=32_768).prop_map(|(huge, n)| if huge {
            "A".repeat(n.max(1_024))
        } else {
            "ü".repeat(n % 2_000 + 1)
        }),
        // `any::<String>()` costs ten times as much to generate.
        1 => vec(any::<char>(), 1..=32).prop_map(String::from_iter),
        3 => regex(
            "[\\x00-\\x1f\\x7f-\\x9f\\x{2028}\\x{2029}\\x{202e}\\x{feff}]{1,32}\
             |sg-[0-9a-f]{1,17}|[0-9]{11,13}|[a-z]{2}(-[a-z]{3,9}){1,2}-[0-9]{1,2}\
             |AWS::[A-Za-z0-9]{0,12}::[A-Za-z0-9]{1,12}|[A-Za-z0-9_-]{120,130}\
             |(sg-|arn:aws:s3:::)[0-9a-f]{0,8}[ ;$`'\"\\\\\\x00\\n*?{}][0-9a-f]{0,8}"
        ),
    ]
    .boxed()
}

const NASTY_STRINGS: &[&str] = &[
    "",
    " \t ",
    "é🚀\u{202e}gnp.exe\u{200b}\u{feff}𝔘𝔫𝔦",
    "\u{0}\u{1}\u{7}\u{8}\n\r\t\u{1b}[31m\u{7f}\u{85}\u{2028}",
    "; rm -rf / #",
    "$(reboot)`id`${IFS}|nc evil 1",
    "../../../../etc/passwd\u{0}.json",
    "' OR 1=1 --\"><script>alert(1)</script>",
    "{resource_id}{account_id}{{}}{",
    "*{[?**/]}\\",
];

// ---------------------------------------------------------------------------------------
// JSON tree edits

fn extreme_number() -> BoxedStrategy<J> {
    let mut extremes: Vec<J> = [i64::MIN, i64::MAX, -1, 0].map(J::from).to_vec();
    extremes.extend([u64::MAX, 9_007_199_254_740_993].map(J::from));
    extremes.extend([f64::MAX, f64::MIN_POSITIVE, -0.0, 1e-300].map(J::from));
    prop_oneof![
        5 => select(extremes),
        1 => any::<i64>().prop_map(J::from),
        1 => any::<f64>().prop_map(J::from),
    ]
    .boxed()
}

fn any_json() -> BoxedStrategy<J> {
    let plain = vec![
        J::Null,
        J::Bool(false),
        J::Bool(true),
        J::Array(vec![]),
        json!({}),
    ];
    prop_oneof![
        4 => select(plain),
        1 => extreme_number(),
        // A string, alone or in an array or an object.
        3 => (nasty_string(), 0u8..3).prop_map(|(s, shape)| match shape {
            0 => J::String(s),
            1 => J::Array(vec![J::String(s)]),
            _ => json!({ "evil": s }),
        }),
    ]
    .boxed()
}

/// An edit of a JSON tree at `at`: a node of a pre-order walk ([`json_nth`]).
#[derive(Debug, Clone)]
struct JsonEdit {
    at: Index,
    op: JsonOp,
}

/// What a [`JsonEdit`] does.
#[derive(Debug, Clone)]
enum JsonOp {
    /// By the node's kind: a string becomes `text`, a boolean its negation, anything
    /// else (a number, null, an array, an object) `number`.
    Replace { text: String, number: J },
    /// Replaces the node with a value of any type.
    Retype(J),
    /// Removes the nth key or element; a scalar becomes null.
    Remove(Index),
    /// An object gets `key`; an array's `nth` element is duplicated; a scalar is wrapped
    /// in an array.
    Add { key: String, value: J, nth: Index },
    /// Wraps the node in arrays or objects.
    Nest { depth: usize, arrays: bool },
    /// Copies another node over this one.
    Copy(Index),
    /// Makes the edit inside the first string that holds a JSON object (SNS's
    /// `Message`), or in the tree itself when there is none.
    Embedded(Box<JsonOp>),
}

fn json_op(embedded: bool) -> BoxedStrategy<JsonOp> {
    use JsonOp::*;
    let ops = prop_oneof![
        2 => (nasty_string(), extreme_number())
            .prop_map(|(text, number)| Replace { text, number }),
        1 => any_json().prop_map(Retype),
        1 => any::<Index>().prop_map(Remove),
        1 => (nasty_string(), any_json(), any::<Index>()).prop_map(|(key, value, nth)| Add {
            key: key.chars().take(64).collect(),
            value,
            nth
        }),
        // Past 128 levels serde_json refuses to parse.
        1 => (1usize..=140, any::<bool>()).prop_map(|(depth, arrays)| Nest { depth, arrays }),
        1 => any::<Index>().prop_map(Copy),
    ];
    if embedded {
        let inner = json_op(false).prop_map(|op| Embedded(Box::new(op)));
        prop_oneof![7 => ops, 1 => inner].boxed()
    } else {
        ops.boxed()
    }
}

fn json_edit() -> BoxedStrategy<JsonEdit> {
    (any::<Index>(), json_op(true))
        .prop_map(|(at, op)| JsonEdit { at, op })
        .boxed()
}

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

/// The first string (pre-order) that holds a JSON object, and that object.
fn embedded_json(v: &mut J) -> Option<(&mut String, J)> {
    match v {
        J::String(s) if s.starts_with('{') => match serde_json::from_str(s) {
            Ok(tree @ J::Object(_)) => Some((s, tree)),
            _ => None,
        },
        J::Object(m) => m.values_mut().find_map(embedded_json),
        J::Array(a) => a.iter_mut().find_map(embedded_json),
        _ => None,
    }
}

impl JsonEdit {
    fn apply(&self, root: &mut J) {
        apply_json(root, self.at, &self.op);
    }
}

fn apply_json(root: &mut J, at: Index, op: &JsonOp) {
    use JsonOp::*;
    if let Embedded(op) = op {
        match embedded_json(root) {
            Some((text, mut tree)) => {
                apply_json(&mut tree, at, op);
                *text = tree.to_string();
            }
            None => apply_json(root, at, op),
        }
        return;
    }
    let count = json_count(root, 0);
    // Copy's source, taken before borrowing the target node.
    let source = match op {
        Copy(from) => json_nth(root, from.index(count), 0).ok().cloned(),
        _ => None,
    };
    let Ok(node) = json_nth(root, at.index(count), 0) else {
        return;
    };
    match op {
        Replace { text, number } => {
            *node = match node {
                J::String(_) => J::String(text.clone()),
                J::Bool(b) => J::Bool(!*b),
                _ => number.clone(),
            }
        }
        Retype(value) => *node = value.clone(),
        Remove(nth) => match node {
            J::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(nth.index(m.len())).cloned().expect("key");
                m.remove(&k);
            }
            J::Array(a) if !a.is_empty() => {
                a.remove(nth.index(a.len()));
            }
            _ => *node = J::Null,
        },
        Add { key, value, nth } => match node {
            J::Object(m) => {
                m.insert(key.clone(), value.clone());
            }
            J::Array(a) if !a.is_empty() => a.push(nth.get(a).clone()),
            _ => *node = J::Array(vec![node.take()]),
        },
        Nest { depth, arrays } => {
            let mut v = node.take();
            for _ in 0..*depth {
                v = if *arrays {
                    J::Array(vec![v])
                } else {
                    J::Object(serde_json::Map::from_iter([("a".to_string(), v)]))
                };
            }
            *node = v;
        }
        Copy(_) => {
            if let Some(v) = source {
                *node = v;
            }
        }
        Embedded(_) => unreachable!("handled above"),
    }
}

/// Repeats one `"key": "value"` pair right after itself, with a different value
/// (`"dup-value"`), in compact or pretty JSON. `serde_json::Value` keeps the last of
/// duplicate keys; whichever wins, the parser must not panic. Made in the text: duplicate
/// keys survive neither parse nor serialise.
fn duplicate_json_key(nth: Index, data: &mut Vec<u8>) {
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
    let (key_end, value_start) = *nth.get(&pairs);
    let Some(key_start) = text[..key_end].rfind('"') else {
        return;
    };
    let Some(value_end) = text[value_start + 1..]
        .find('"')
        .map(|i| value_start + 1 + i + 1)
    else {
        return;
    };
    let dup = format!(
        "{}\"dup-{}",
        &text[key_start..value_start],
        &text[value_start + 1..value_end]
    );
    *data = [&text[..value_end], ", ", &dup, &text[value_end..]]
        .concat()
        .into_bytes();
}

/// One edit of an event case.
#[derive(Debug, Clone)]
enum EventEdit {
    Tree(JsonEdit),
    Bytes(ByteEdit),
    DuplicateKey(Index),
}

fn event_case() -> impl Strategy<Value = Case<EventEdit>> {
    case(prop_oneof![
        4 => json_edit().prop_map(EventEdit::Tree),
        3 => byte_edit().prop_map(EventEdit::Bytes),
        1 => any::<Index>().prop_map(EventEdit::DuplicateKey),
    ])
}

impl Edit for EventEdit {
    type Tree = J;

    fn is_tree(&self) -> bool {
        matches!(self, EventEdit::Tree(_))
    }

    fn edit_tree(&self, tree: &mut J) {
        if let EventEdit::Tree(e) = self {
            e.apply(tree);
        }
    }

    fn edit_text(&self, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        match self {
            EventEdit::Tree(_) => {}
            EventEdit::Bytes(b) => b.apply(data, corpus),
            EventEdit::DuplicateKey(nth) => duplicate_json_key(*nth, data),
        }
    }

    fn write(tree: &J, pretty: bool) -> Option<Vec<u8>> {
        if pretty {
            serde_json::to_vec_pretty(tree).ok()
        } else {
            serde_json::to_vec(tree).ok()
        }
    }
}

// ---------------------------------------------------------------------------------------
// TOML tree edits

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

/// Values a policy's enums take (and one they do not).
const POLICY_WORDS: &[&str] = &["LOW", "MEDIUM", "HIGH", "CRITICAL", "auto", "notify", "x"];
/// Keys added to a table: known ones (a rule's second `id`, ...) and one no table knows.
const POLICY_KEYS: &[&str] = &[
    "id", "severity", "mode", "action", "unknown", "ports", "fix",
];

fn extreme_toml_number() -> BoxedStrategy<T> {
    let mut extremes: Vec<T> = [i64::MIN, i64::MAX, -1, 0, 65_536].map(T::Integer).to_vec();
    extremes.extend([f64::NAN, f64::INFINITY, -0.0, 1e300].map(T::Float));
    prop_oneof![
        5 => select(extremes),
        1 => any::<i64>().prop_map(T::Integer),
        1 => any::<f64>().prop_map(T::Float),
    ]
    .boxed()
}

fn any_toml() -> BoxedStrategy<T> {
    let datetime = "1979-05-27T07:32:00Z"
        .parse::<toml::value::Datetime>()
        .expect("a TOML datetime");
    let mut plain = vec![
        T::Boolean(false),
        T::Boolean(true),
        T::Array(vec![]),
        T::Table(toml::Table::new()),
        T::Datetime(datetime),
    ];
    plain.extend(POLICY_WORDS.iter().map(|w| T::String(w.to_string())));
    prop_oneof![
        // (as often as before: a word 1 time in 9)
        4 => select(plain),
        1 => extreme_toml_number(),
        // A string, alone, in an array or in a table.
        3 => (nasty_string(), 0u8..3).prop_map(|(s, shape)| match shape {
            0 => T::String(s),
            1 => T::Array(vec![T::String(s), T::Integer(22)]),
            _ => T::Table(toml::Table::from_iter([("evil".into(), T::String(s))])),
        }),
    ]
    .boxed()
}

/// An edit of a TOML tree at `at`: a node of a pre-order walk ([`toml_paths`]).
#[derive(Debug, Clone)]
struct TomlEdit {
    at: Index,
    op: TomlOp,
}

/// What a [`TomlEdit`] does. The root stays a table.
#[derive(Debug, Clone)]
enum TomlOp {
    /// By the node's kind: a string becomes `text`, a number `number`, a boolean its
    /// negation; a table, an array or a datetime becomes the string `text` (the root an
    /// empty table).
    Replace { text: String, number: T },
    /// Replaces the node with a value of any type.
    Retype(T),
    /// Removes the nth key or element.
    Remove(Index),
    /// A table gets `key` (a rule's second `id`, ...); an array's `nth` element is
    /// duplicated (a duplicated `[[rule]]` duplicates its id).
    Add { key: String, value: T, nth: Index },
    /// Wraps the node in arrays.
    Nest(usize),
}

fn toml_edit() -> BoxedStrategy<TomlEdit> {
    use TomlOp::*;
    let op = prop_oneof![
        2 => (nasty_string(), extreme_toml_number())
            .prop_map(|(text, number)| Replace { text, number }),
        1 => any_toml().prop_map(Retype),
        1 => any::<Index>().prop_map(Remove),
        1 => (select(POLICY_KEYS), any_toml(), any::<Index>())
            .prop_map(|(key, value, nth)| Add { key: key.into(), value, nth }),
        1 => (1usize..=64).prop_map(Nest),
    ];
    (any::<Index>(), op)
        .prop_map(|(at, op)| TomlEdit { at, op })
        .boxed()
}

impl TomlEdit {
    fn apply(&self, root: &mut T) {
        use TomlOp::*;
        let mut paths = Vec::new();
        toml_paths(root, Vec::new(), 0, &mut paths);
        let path = self.at.get(&paths);
        let is_root = path.is_empty();
        let Some(node) = toml_at(root, path) else {
            return;
        };
        match &self.op {
            Replace { text, number } => {
                *node = match node {
                    T::Integer(_) | T::Float(_) => number.clone(),
                    T::Boolean(b) => T::Boolean(!*b),
                    _ if is_root => T::Table(toml::Table::new()),
                    _ => T::String(text.clone()),
                }
            }
            Retype(value) if !is_root => *node = value.clone(),
            Remove(nth) => match node {
                T::Table(t) if !t.is_empty() => {
                    let k = t.keys().nth(nth.index(t.len())).cloned().expect("key");
                    t.remove(&k);
                }
                T::Array(a) if !a.is_empty() => {
                    a.remove(nth.index(a.len()));
                }
                _ => {}
            },
            Add { key, value, nth } => match node {
                T::Table(t) => {
                    t.insert(key.clone(), value.clone());
                }
                T::Array(a) if !a.is_empty() => a.push(nth.get(a).clone()),
                _ => {}
            },
            Nest(depth) if !is_root => {
                let mut v = node.clone();
                for _ in 0..*depth {
                    v = T::Array(vec![v]);
                }
                *node = v;
            }
            Retype(_) | Nest(_) => {}
        }
    }
}

/// Text-level TOML edits.
#[derive(Debug, Clone)]
enum TomlTextEdit {
    /// Appends a copy of a table header and its body.
    DuplicateTable(Index),
    /// Inserts a copy of a `key = value` line elsewhere.
    DuplicateLine { nth: Index, to: Index },
    /// Wraps a `key = value` line's value in inline arrays.
    NestInline { nth: Index, depth: usize },
}

fn toml_text_edit() -> BoxedStrategy<TomlTextEdit> {
    use TomlTextEdit::*;
    let ix = any::<Index>;
    prop_oneof![
        ix().prop_map(DuplicateTable),
        (ix(), ix()).prop_map(|(nth, to)| DuplicateLine { nth, to }),
        (ix(), 1usize..=200).prop_map(|(nth, depth)| NestInline { nth, depth }),
    ]
    .boxed()
}

impl TomlTextEdit {
    /// Whether it applied (the text had a table, or a key, to work on).
    fn apply(&self, data: &mut Vec<u8>) -> bool {
        use TomlTextEdit::*;
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
        let with_newline = |s: &str| {
            let mut s = s.to_string();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        };
        let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        match self {
            DuplicateTable(nth) if !headers.is_empty() => {
                let h = *nth.get(&headers);
                let end = headers
                    .iter()
                    .copied()
                    .find(|&i| i > h)
                    .unwrap_or(lines.len());
                out.push(with_newline(&lines[h..end].concat()));
            }
            DuplicateLine { nth, to } if !keys.is_empty() => {
                let line = with_newline(lines[*nth.get(&keys)]);
                out.insert(to.index(out.len() + 1), line);
            }
            NestInline { nth, depth } if !keys.is_empty() => {
                let k = *nth.get(&keys);
                let line = lines[k];
                let eq = line.find('=').expect("a key line has `=`");
                out[k] = format!(
                    "{}= {}{}{}\n",
                    &line[..eq],
                    "[".repeat(*depth),
                    line[eq + 1..].trim_end(),
                    "]".repeat(*depth)
                );
            }
            _ => return false,
        }
        *data = out.concat().into_bytes();
        true
    }
}

/// One edit of a policy case. A text edit that finds nothing to work on makes its
/// byte edit instead.
#[derive(Debug, Clone)]
enum PolicyEdit {
    Tree(TomlEdit),
    Bytes(ByteEdit),
    Text(TomlTextEdit, ByteEdit),
}

fn policy_case() -> impl Strategy<Value = Case<PolicyEdit>> {
    case(prop_oneof![
        4 => toml_edit().prop_map(PolicyEdit::Tree),
        3 => byte_edit().prop_map(PolicyEdit::Bytes),
        1 => (toml_text_edit(), byte_edit()).prop_map(|(t, b)| PolicyEdit::Text(t, b)),
    ])
}

impl Edit for PolicyEdit {
    type Tree = T;

    fn is_tree(&self) -> bool {
        matches!(self, PolicyEdit::Tree(_))
    }

    fn edit_tree(&self, tree: &mut T) {
        if let PolicyEdit::Tree(e) = self {
            e.apply(tree);
        }
    }

    fn edit_text(&self, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        match self {
            PolicyEdit::Tree(_) => {}
            PolicyEdit::Bytes(b) => b.apply(data, corpus),
            PolicyEdit::Text(t, b) => {
                if !t.apply(data) {
                    b.apply(data, corpus);
                }
            }
        }
    }

    fn write(tree: &T, _pretty: bool) -> Option<Vec<u8>> {
        toml::to_string(tree).ok().map(String::into_bytes)
    }
}

// ---------------------------------------------------------------------------------------
// Properties

/// Parses one message body: `true` accepted, `false` rejected. Panics on a broken
/// invariant.
fn check_event(input: &str) -> bool {
    match parse_message(input) {
        Ok(event) => {
            check_accepted_event(&event);
            true
        }
        Err(e) => {
            assert!(
                !e.to_string().trim().is_empty(),
                "rejected with an empty reason"
            );
            false
        }
    }
}

/// An accepted event passes validation again, field by field.
fn check_accepted_event(event: &ComplianceEvent) {
    let d = &event.detail;
    let ok = |what: &str, r: Result<(), String>| {
        if let Err(e) = r {
            panic!("accepted an event whose {what} fails validation: {e}: {event:?}");
        }
    };
    ok(
        "resourceId",
        validate::resource_id(&d.resource_type, &d.resource_id),
    );
    ok("resourceType", validate::resource_type(&d.resource_type));
    ok("awsAccountId", validate::account(&d.aws_account_id));
    ok("awsRegion", validate::region(&d.aws_region));
    ok("configRuleName", validate::rule_name(&d.config_rule_name));
    let q = &d
        .new_evaluation_result
        .evaluation_result_identifier
        .evaluation_result_qualifier;
    for (field, theirs, ours) in [
        ("resourceId", &q.resource_id, &d.resource_id),
        ("resourceType", &q.resource_type, &d.resource_type),
        ("configRuleName", &q.config_rule_name, &d.config_rule_name),
    ] {
        assert!(
            theirs.as_ref().is_none_or(|v| v == ours),
            "accepted an event whose qualifier's {field} disagrees: {event:?}"
        );
    }
    if event.delivery == Delivery::EventBridge {
        assert!(
            !event.event_id.is_empty() && event.time.is_some(),
            "accepted an EventBridge event without an id or a time: {event:?}"
        );
    }
}

/// Loads one policy text: `true` accepted, `false` rejected. Panics on a broken
/// invariant.
fn check_policy(input: &str) -> bool {
    let lines = input.matches('\n').count() + 1;
    match Policy::from_toml(input, "fuzz.toml") {
        Ok(policy) => {
            assert!(!policy.rules.is_empty(), "accepted a policy without rules");
            let mut ids = std::collections::HashSet::new();
            for rule in &policy.rules {
                assert!(
                    ids.insert(&rule.id),
                    "accepted duplicate rule id {:?}",
                    rule.id
                );
                assert!(
                    (1..=lines).contains(&rule.line),
                    "rule {:?} at line {} of a {lines}-line policy",
                    rule.id,
                    rule.line
                );
            }
            true
        }
        Err(e) => {
            assert!(!e.problems.is_empty(), "rejected with no problems listed");
            assert!(
                e.problems.iter().all(|p| !p.message.trim().is_empty()),
                "a problem with an empty message: {e}"
            );
            assert!(
                e.problems
                    .iter()
                    .all(|p| p.line.is_none_or(|l| (1..=lines).contains(&l))),
                "a problem on a line past the end of a {lines}-line policy: {e}"
            );
            false
        }
    }
}

// ---------------------------------------------------------------------------------------
// Driver

thread_local! {
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    static WANT_BACKTRACE: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records the message (and, when asked, a backtrace) of panics raised inside a fuzz
/// case, instead of printing one per case and per shrinking step; panics elsewhere go to
/// the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_CASE.get() {
                return previous(info);
            }
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
            let mut text = format!("panicked at {location}:\n{payload}");
            if WANT_BACKTRACE.get() {
                text.push_str(&format!("\n\nbacktrace:\n{}", Backtrace::force_capture()));
            }
            LAST_PANIC.set(Some(text));
        }));
    });
}

/// Runs `check` on `input`, turning a panic into its report.
fn run_case(check: fn(&str) -> bool, input: &str, backtrace: bool) -> Result<bool, String> {
    IN_CASE.set(true);
    WANT_BACKTRACE.set(backtrace);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(input)));
    IN_CASE.set(false);
    outcome.map_err(|_| {
        LAST_PANIC
            .take()
            .unwrap_or_else(|| "(no panic report captured)".into())
    })
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

/// `<target dir>/fuzz-crashes`: `CARGO_TARGET_DIR`, else the target directory this test
/// binary was built in (`<target dir>/<profile>/deps/fuzz-*`), else `<repo>/target`.
fn crash_dir() -> PathBuf {
    let built_in = || {
        let exe = std::env::current_exe().ok()?;
        let deps = exe.parent().filter(|d| d.ends_with("deps"))?;
        deps.parent()?.parent().map(Path::to_path_buf)
    };
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(built_in)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("fuzz-crashes")
}

/// The proptest configuration: `cases` cases from `seed`, failing seeds saved under the
/// target directory (never in the source tree).
fn config(name: &str, cases: u32, seed: u64) -> ProptestConfig {
    let regressions = crash_dir().join(format!("{name}.proptest-regressions"));
    let regressions: &'static str = Box::leak(regressions.display().to_string().into_boxed_str());
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases,
        // Several times faster than the default ChaCha in a debug build.
        rng_algorithm: RngAlgorithm::XorShift,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        max_shrink_time: match defaults.max_shrink_time {
            0 => DEFAULT_MAX_SHRINK_MS,
            ms => ms,
        },
        ..defaults
    }
}

/// Runs one target: proptest generates cases from `strategy`, [`input`] makes each one's
/// text from `corpus`, and `check` must return (accepted or rejected) without panicking.
fn fuzz<E: Edit>(
    name: &str,
    default_cases: u32,
    corpus: Corpus<E::Tree>,
    strategy: impl Strategy<Value = Case<E>>,
    check: fn(&str) -> bool,
) {
    install_panic_hook();
    let cases = u32::try_from(env_u64("REDRESS_FUZZ_CASES", default_cases.into()))
        .expect("REDRESS_FUZZ_CASES fits in a u32");
    let seed = env_u64("REDRESS_FUZZ_SEED", DEFAULT_SEED);
    let dir = crash_dir();
    let trace = std::env::var_os("REDRESS_FUZZ_TRACE").is_some().then(|| {
        fs::create_dir_all(&dir).expect("creating the crash directory");
        dir.join(format!("{name}-last.txt"))
    });
    let (accepted, rejected, failed) = (Cell::new(0u64), Cell::new(0u64), Cell::new(false));
    let started = Instant::now();

    let mut runner = TestRunner::new(config(name, cases, seed));
    let result = runner.run(&strategy, |case| {
        let data = input(&corpus, &case);
        let text = String::from_utf8_lossy(&data);
        if let Some(path) = &trace {
            fs::write(path, text.as_bytes()).expect("writing the trace file");
        }
        // Shrinking reruns failing and passing variants: only the search counts.
        let count = |c: &Cell<u64>| {
            if !failed.get() {
                c.set(c.get() + 1)
            }
        };
        match run_case(check, &text, false) {
            Ok(true) => count(&accepted),
            Ok(false) => count(&rejected),
            Err(report) => {
                failed.set(true);
                return Err(TestCaseError::fail(report));
            }
        }
        Ok(())
    });

    let (accepted, rejected) = (accepted.get(), rejected.get());
    println!(
        "fuzz {name}: {cases} cases (seed {seed:#018x}): {accepted} accepted, {rejected} rejected, \
         {} in {:.2}s",
        if result.is_ok() { "0 panics" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );

    match result {
        Ok(()) => {}
        Err(TestError::Abort(why)) => panic!("fuzz {name}: proptest gave up: {why}"),
        Err(TestError::Fail(why, minimal)) => {
            let data = input(&corpus, &minimal);
            let text = String::from_utf8_lossy(&data);
            let report = match run_case(check, &text, true) {
                Err(report) => report,
                Ok(_) => format!("{why}\n\n(the minimal case passed when run again)"),
            };
            fs::create_dir_all(&dir).expect("creating the crash directory");
            let path = dir.join(format!("{name}-minimal.txt"));
            fs::write(&path, text.as_bytes()).expect("writing the failing input");
            let case = format!("{minimal:?}");
            fs::write(
                dir.join(format!("{name}-minimal.backtrace.txt")),
                format!("case: {case}\n\n{report}"),
            )
            .expect("writing the backtrace");
            let case: String = case.chars().take(2_000).collect();
            panic!(
                "fuzz {name} (seed {seed:#x}): {why}\n\nminimal case (its seed is saved in \
                 {}, and every later run replays it first): {case}\ninput: {}\n",
                dir.join(format!("{name}.proptest-regressions")).display(),
                path.display()
            );
        }
    }

    // A degenerate mutator (everything rejected, or nothing changed) is a failure too.
    let cases = u64::from(cases);
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
    let corpus = event_corpus();
    fuzz(
        "event",
        DEFAULT_EVENT_CASES,
        corpus,
        event_case(),
        check_event,
    );
}

#[test]
fn fuzz_policy_from_toml() {
    let corpus = policy_corpus();
    fuzz(
        "policy",
        DEFAULT_POLICY_CASES,
        corpus,
        policy_case(),
        check_policy,
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

/// The same seed gives the same inputs (so a reported failure replays), another seed
/// other ones.
#[test]
fn cases_are_reproducible() {
    fn sample<E: Edit>(
        s: impl Strategy<Value = Case<E>>,
        c: &Corpus<E::Tree>,
        seed: u64,
    ) -> Vec<Vec<u8>> {
        let mut runner = TestRunner::new(config("reproducible", 1, seed));
        (0..20)
            .map(|_| input(c, &s.new_tree(&mut runner).expect("a case").current()))
            .collect()
    }
    let (events, policies) = (event_corpus(), policy_corpus());
    let event = |seed| sample(event_case(), &events, seed);
    let policy = |seed| sample(policy_case(), &policies, seed);
    assert_eq!(event(7), event(7));
    assert_ne!(event(7), event(8));
    assert_eq!(policy(7), policy(7));
    assert_ne!(policy(7), policy(8));
}
