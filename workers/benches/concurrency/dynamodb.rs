//! The stand-in's DynamoDB: just what the executor's ledger, undo exceptions and fleet
//! counters call (`DescribeTable`, `GetItem`, `PutItem`, `UpdateItem`), on tables keyed
//! by the ledger's partition key alone, with the expressions they write: conditions of
//! `AND`/`OR`/`NOT`, comparisons (`=`, `<>`, `<`, `<=`, `>`, `>=`) and
//! `attribute_exists`/`attribute_not_exists` on (nested) attribute paths; updates of
//! `SET path = operand`, `ADD path number` and `REMOVE path`. A condition that does not
//! hold is answered with `ConditionalCheckFailedException`, as DynamoDB does, so the
//! ledger's leases behave as they would on AWS. Anything else is an error that names
//! what is missing, so an executor that starts using more fails the bench visibly.

use std::cmp::Ordering;
use std::collections::HashMap;

use redress::ledger::item;
use serde_json::{Map, Value};

/// An item in DynamoDB's JSON form: attribute name → `{"S": …}`, `{"N": …}`, `{"M": …}`…
pub type Item = Map<String, Value>;

/// Why a call failed: DynamoDB's error type (after the `#`) and message.
pub type Failure = (&'static str, String);

/// The tables, by name.
#[derive(Default)]
pub struct Tables(HashMap<String, HashMap<String, Item>>);

fn validation(message: impl Into<String>) -> Failure {
    ("ValidationException", message.into())
}

impl Tables {
    /// Creates an empty table (`redress provision`'s job on AWS).
    pub fn create(&mut self, name: &str) {
        self.0.entry(name.to_string()).or_default();
    }

    /// Every item of a table.
    pub fn items(&self, name: &str) -> impl Iterator<Item = &Item> {
        self.0.get(name).into_iter().flat_map(|t| t.values())
    }

    /// Answers one call, or says why it failed.
    pub fn call(&mut self, action: &str, req: &Value) -> Result<Value, Failure> {
        let name = req["TableName"].as_str().unwrap_or_default();
        if action == "DescribeTable" {
            return match self.0.contains_key(name) {
                true => Ok(serde_json::json!({
                    "Table": {"TableName": name, "TableStatus": "ACTIVE"}
                })),
                false => Err(not_found(name)),
            };
        }
        let table = self.0.get_mut(name).ok_or_else(|| not_found(name))?;
        let names = req["ExpressionAttributeNames"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let values = req["ExpressionAttributeValues"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let key = match action {
            "PutItem" => &req["Item"][item::ID],
            _ => &req["Key"][item::ID],
        };
        let key = key.to_string();
        let stored = table.get(&key).cloned().unwrap_or_default();
        if let Some(condition) = req["ConditionExpression"].as_str() {
            let mut c = Condition {
                cursor: Cursor::new(condition, &names, &values),
                item: &stored,
            };
            let holds = c.or()?;
            c.end()?;
            if !holds {
                return Err((
                    "ConditionalCheckFailedException",
                    "The conditional request failed".into(),
                ));
            }
        }
        match action {
            "GetItem" => Ok(match table.get(&key) {
                Some(found) => serde_json::json!({ "Item": found }),
                None => serde_json::json!({}),
            }),
            "PutItem" => {
                let new = req["Item"].as_object().cloned().unwrap_or_default();
                table.insert(key, new);
                Ok(serde_json::json!({}))
            }
            "UpdateItem" => {
                let mut new = stored;
                for (k, v) in req["Key"].as_object().into_iter().flatten() {
                    new.insert(k.clone(), v.clone());
                }
                let update = req["UpdateExpression"].as_str().unwrap_or_default();
                apply(update, &names, &values, &mut new)?;
                table.insert(key, new.clone());
                Ok(match req["ReturnValues"].as_str() {
                    Some("ALL_NEW") => serde_json::json!({ "Attributes": new }),
                    _ => serde_json::json!({}),
                })
            }
            other => Err(validation(format!(
                "the bench's DynamoDB does not implement {other}"
            ))),
        }
    }
}

fn not_found(table: &str) -> Failure {
    (
        "ResourceNotFoundException",
        format!("Requested resource not found: Table: {table} not found"),
    )
}

/// Splits an expression into words (`#name`, `:value`, names, keywords) and symbols.
fn tokens(expression: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' | ')' | ',' | '.' | '=' => out.push(c.to_string()),
            '<' | '>' => {
                let mut op = c.to_string();
                if let Some(&next) = chars
                    .peek()
                    .filter(|n| **n == '=' || (c == '<' && **n == '>'))
                {
                    op.push(next);
                    chars.next();
                }
                out.push(op);
            }
            c => {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "(),.=<>".contains(n) {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    out
}

/// A cursor over an expression's tokens, with its placeholders.
struct Cursor<'a> {
    tokens: Vec<String>,
    at: usize,
    names: &'a Item,
    values: &'a Item,
}

impl<'a> Cursor<'a> {
    fn new(expression: &str, names: &'a Item, values: &'a Item) -> Cursor<'a> {
        Cursor {
            tokens: tokens(expression),
            at: 0,
            names,
            values,
        }
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Result<String, Failure> {
        let t = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or_else(|| validation("the expression ends too early"))?;
        self.at += 1;
        Ok(t)
    }

    /// Takes the next token if it is `word` (keywords are case-insensitive).
    fn eat(&mut self, word: &str) -> bool {
        let yes = self.peek().is_some_and(|t| t.eq_ignore_ascii_case(word));
        if yes {
            self.at += 1;
        }
        yes
    }

    fn expect(&mut self, word: &str) -> Result<(), Failure> {
        match self.eat(word) {
            true => Ok(()),
            false => Err(validation(format!(
                "expected {word:?} at {:?}",
                self.peek()
            ))),
        }
    }

    fn end(&self) -> Result<(), Failure> {
        match self.peek() {
            None => Ok(()),
            Some(t) => Err(validation(format!("unexpected {t:?}"))),
        }
    }

    /// An attribute path: names (or `#placeholders`) joined by dots.
    fn path(&mut self) -> Result<Vec<String>, Failure> {
        let mut path = Vec::new();
        loop {
            let word = self.next()?;
            let name = match word.strip_prefix('#') {
                Some(_) => self
                    .names
                    .get(&word)
                    .and_then(Value::as_str)
                    .ok_or_else(|| validation(format!("no attribute name for {word}")))?
                    .to_string(),
                None => word,
            };
            path.push(name);
            if !self.eat(".") {
                return Ok(path);
            }
        }
    }

    /// A `:value`, or the value at a path of `item` (`None`: no such attribute).
    fn operand(&mut self, item: &Item) -> Result<Option<Value>, Failure> {
        match self.peek() {
            Some(t) if t.starts_with(':') => {
                let word = self.next()?;
                let v = self.values.get(&word).cloned();
                v.map(Some)
                    .ok_or_else(|| validation(format!("no attribute value for {word}")))
            }
            _ => Ok(get(item, &self.path()?).cloned()),
        }
    }
}

/// A condition, evaluated against the stored item (empty when there is none) as it is
/// parsed: `or := and (OR and)*`, `and := unary (AND unary)*`.
struct Condition<'a> {
    cursor: Cursor<'a>,
    item: &'a Item,
}

impl Condition<'_> {
    fn end(&self) -> Result<(), Failure> {
        self.cursor.end()
    }

    fn or(&mut self) -> Result<bool, Failure> {
        let mut holds = self.and()?;
        while self.cursor.eat("OR") {
            let right = self.and()?;
            holds = holds || right;
        }
        Ok(holds)
    }

    fn and(&mut self) -> Result<bool, Failure> {
        let mut holds = self.unary()?;
        while self.cursor.eat("AND") {
            let right = self.unary()?;
            holds = holds && right;
        }
        Ok(holds)
    }

    fn unary(&mut self) -> Result<bool, Failure> {
        if self.cursor.eat("NOT") {
            return Ok(!self.unary()?);
        }
        if self.cursor.eat("(") {
            let holds = self.or()?;
            self.cursor.expect(")")?;
            return Ok(holds);
        }
        for (function, exists) in [("attribute_exists", true), ("attribute_not_exists", false)] {
            if self.cursor.eat(function) {
                self.cursor.expect("(")?;
                let found = get(self.item, &self.cursor.path()?).is_some();
                self.cursor.expect(")")?;
                return Ok(found == exists);
            }
        }
        let left = self.cursor.operand(self.item)?;
        let op = self.cursor.next()?;
        let right = self.cursor.operand(self.item)?;
        // A comparison with a missing attribute is false, as in DynamoDB.
        let order = match (&left, &right) {
            (Some(l), Some(r)) => compare(l, r),
            _ => return Ok(false),
        };
        Ok(match op.as_str() {
            "=" => order == Some(Ordering::Equal),
            "<>" => order != Some(Ordering::Equal),
            "<" => order == Some(Ordering::Less),
            "<=" => matches!(order, Some(Ordering::Less | Ordering::Equal)),
            ">" => order == Some(Ordering::Greater),
            ">=" => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
            other => return Err(validation(format!("unknown comparison {other:?}"))),
        })
    }
}

/// Numbers compare as numbers, strings as strings; other kinds are only equal or not.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (number(a), number(b), a.get("S"), b.get("S")) {
        (Some(x), Some(y), _, _) => x.partial_cmp(&y),
        (_, _, Some(Value::String(x)), Some(Value::String(y))) => Some(x.cmp(y)),
        _ => (a == b).then_some(Ordering::Equal),
    }
}

fn number(v: &Value) -> Option<f64> {
    v.get("N")?.as_str()?.parse().ok()
}

/// The value at `path` (top-level name, then names inside maps).
fn get<'v>(item: &'v Item, path: &[String]) -> Option<&'v Value> {
    let (first, rest) = path.split_first()?;
    let mut v = item.get(first)?;
    for name in rest {
        v = v.get("M")?.get(name)?;
    }
    Some(v)
}

/// The map that holds the last name of `path`, created on the way if missing.
fn parent<'v>(item: &'v mut Item, path: &[String]) -> Result<&'v mut Item, Failure> {
    let mut map = item;
    for name in &path[..path.len() - 1] {
        map = map
            .entry(name.clone())
            .or_insert_with(|| serde_json::json!({"M": {}}))
            .get_mut("M")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| validation(format!("{name} is not a map")))?;
    }
    Ok(map)
}

/// Applies an update expression (`SET`, `ADD`, `REMOVE` clauses) to `item`.
fn apply(update: &str, names: &Item, values: &Item, item: &mut Item) -> Result<(), Failure> {
    let mut c = Cursor::new(update, names, values);
    while c.peek().is_some() {
        let clause = c.next()?.to_ascii_uppercase();
        loop {
            let path = c.path()?;
            let last = path.last().expect("a path has a name").clone();
            match clause.as_str() {
                "SET" => {
                    c.expect("=")?;
                    let v = c.operand(item)?.unwrap_or(Value::Null);
                    parent(item, &path)?.insert(last, v);
                }
                "ADD" => {
                    let add = c.operand(item)?.as_ref().and_then(number);
                    let add = add.ok_or_else(|| validation("ADD takes a number"))?;
                    let now = get(item, &path).and_then(number).unwrap_or(0.0) + add;
                    // Whole numbers stay whole, as the counters write them.
                    let n = if now.fract() == 0.0 {
                        format!("{}", now as i64)
                    } else {
                        now.to_string()
                    };
                    parent(item, &path)?.insert(last, serde_json::json!({ "N": n }));
                }
                "REMOVE" => {
                    parent(item, &path)?.remove(&last);
                }
                other => return Err(validation(format!("unknown update clause {other}"))),
            }
            if !c.eat(",") {
                break;
            }
        }
    }
    Ok(())
}
