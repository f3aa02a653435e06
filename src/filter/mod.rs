//! Content filters: an expression over an event's envelope that decides whether a
//! subscription takes the event (`payload.score >= 80 and topic == "attacker.scored"`).
//!
//! The language is a small subset of minijinja's expressions (docs/filters.md):
//! the envelope's names, literals, attribute and item lookup, comparisons, `in`,
//! `and`/`or`/`not`, `if … else`, list literals, a few tests (`is defined`,
//! `is startingwith "10."`) and the `length` and `default` filters. What is left
//! out is what could copy without a bound: arithmetic (`"x" * 100000000`),
//! concatenation (`~`, `+`), slicing, calls and every other filter. The parsed
//! source is checked against that subset before minijinja compiles it (its compiler
//! folds constant expressions, so an unchecked source could allocate while
//! compiling); what remains evaluates in a few bounded steps, counted by fuel.
//! That is why filters run in the worker's process, unlike templates.

use std::sync::LazyLock;

use minijinja::{
    machinery::{ast, parse_expr, Span},
    Environment, Error, ErrorKind, Expression, UndefinedBehavior, Value,
};
use serde::Serialize;

use crate::domain::Event;

/// Longest filter source, in bytes.
pub const MAX_FILTER_BYTES: usize = 2048;
/// Steps of one evaluation; a filter within `MAX_FILTER_BYTES` needs a few hundred.
const FUEL: u64 = 5_000;
/// Deepest nesting of the parsed expression: a chain `a or b or c …` nests one level
/// per term, and the size limit allows a few hundred; this bounds the stack of the
/// check and of the compiler.
const MAX_DEPTH: usize = 512;
/// Calls within an evaluation (no filter can call anything that recurses).
const RECURSION_LIMIT: usize = 32;
/// The names a filter may read: the envelope's fields.
const NAMES: [&str; 6] = ["id", "payload", "topic", "ts", "type", "v"];
/// Tests (`x is name`) a filter may use; each answers from its operands alone.
const TESTS: [&str; 15] = [
    "defined",
    "undefined",
    "none",
    "true",
    "false",
    "boolean",
    "number",
    "integer",
    "float",
    "string",
    "sequence",
    "mapping",
    "startingwith",
    "endingwith",
    "in",
];
/// Filters (`x | name`) a filter may use: neither copies its input.
const FILTERS: [&str; 2] = ["length", "default"];

/// Where in the source a problem is (1-based line and column, 0-based byte offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Position {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
}

/// Why a filter does not compile, or why it failed on an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", .position.map(|p| format!(" (line {}, column {})", p.line, p.column)).unwrap_or_default())]
pub struct FilterError {
    pub message: String,
    pub position: Option<Position>,
}

/// A compiled filter.
pub struct Filter {
    source: String,
    expr: Expression<'static, 'static>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Filter").field(&self.source).finish()
    }
}

/// One environment for every filter: no loader, no globals, only the tests and
/// filters listed above, a fuel budget per evaluation.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    use minijinja::{filters, tests};
    let mut env = Environment::empty();
    // A missing field is an error wherever it is used except in `is defined`
    // (and `default`): lenient rules would make `payload.missing in "abc"` true.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_debug(false);
    env.add_test("defined", tests::is_defined);
    env.add_test("undefined", tests::is_undefined);
    env.add_test("none", tests::is_none);
    env.add_test("true", tests::is_true);
    env.add_test("false", tests::is_false);
    env.add_test("boolean", tests::is_boolean);
    env.add_test("number", tests::is_number);
    env.add_test("integer", tests::is_integer);
    env.add_test("float", tests::is_float);
    env.add_test("string", tests::is_string);
    env.add_test("sequence", tests::is_sequence);
    env.add_test("mapping", tests::is_mapping);
    env.add_test("startingwith", tests::is_startingwith);
    env.add_test("endingwith", tests::is_endingwith);
    env.add_test("in", tests::is_in);
    env.add_filter("length", filters::length);
    env.add_filter("default", filters::default);
    env
});

impl Filter {
    /// Check `source` against the language and compile it.
    pub fn compile(source: &str) -> Result<Self, FilterError> {
        if source.len() > MAX_FILTER_BYTES {
            return Err(FilterError {
                message: format!("is {} bytes; at most {MAX_FILTER_BYTES}", source.len()),
                position: None,
            });
        }
        if source.trim().is_empty() {
            return Err(FilterError {
                message: "is empty".into(),
                position: None,
            });
        }
        let ast = parse_expr(source).map_err(|e| from_minijinja(source, &e))?;
        check(&ast, 0).map_err(|(message, span)| {
            // Past any blank before the token meant.
            let at = span.start_offset as usize;
            let blank = source
                .get(at..)
                .map_or(0, |rest| rest.len() - rest.trim_start().len());
            FilterError {
                message,
                position: Some(position_at(source, at + blank)),
            }
        })?;
        let expr = ENV
            .compile_expression_owned(source.to_owned())
            .map_err(|e| from_minijinja(source, &e))?;
        Ok(Self {
            source: source.to_owned(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `event` passes: the expression's truth, as `if` would take it.
    pub fn matches(&self, event: &Event) -> Result<bool, FilterError> {
        let ctx = Envelope {
            id: &event.id,
            payload: &event.payload,
            topic: &event.topic,
            ts: &event.ts,
            kind: &event.kind,
            v: 1,
        };
        self.expr
            .eval(ctx)
            .map(|v: Value| v.is_true())
            .map_err(|e| FilterError {
                message: describe(&e),
                position: None,
            })
    }
}

/// The names a filter sees: the envelope as receivers get it.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    payload: &'a serde_json::Value,
    topic: &'a str,
    ts: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    v: u8,
}

type Refusal = (String, Span);

/// Refuse anything outside the language, naming it and where it is.
fn check(expr: &ast::Expr<'_>, depth: usize) -> Result<(), Refusal> {
    use ast::Expr;
    if depth > MAX_DEPTH {
        return Err((format!("nests deeper than {MAX_DEPTH} levels"), expr.span()));
    }
    let d = depth + 1;
    match expr {
        Expr::Var(v) if NAMES.contains(&v.id) => Ok(()),
        Expr::Var(v) => Err((
            format!(
                "unknown name `{}`; a filter reads {}",
                v.id,
                NAMES.join(", ")
            ),
            v.span(),
        )),
        Expr::Const(_) => Ok(()),
        Expr::GetAttr(g) => check(&g.expr, d),
        Expr::GetItem(g) => {
            check(&g.expr, d)?;
            check(&g.subscript_expr, d)
        }
        Expr::UnaryOp(u) => check(&u.expr, d),
        Expr::BinOp(b) => match b.op {
            ast::BinOpKind::Eq
            | ast::BinOpKind::Ne
            | ast::BinOpKind::Lt
            | ast::BinOpKind::Lte
            | ast::BinOpKind::Gt
            | ast::BinOpKind::Gte
            | ast::BinOpKind::ScAnd
            | ast::BinOpKind::ScOr
            | ast::BinOpKind::In => {
                check(&b.left, d)?;
                check(&b.right, d)
            }
            // Pointing at the operator: it follows the left operand.
            _ => Err((
                "arithmetic and concatenation are not part of the filter language; \
                 compare values instead"
                    .into(),
                Span {
                    start_offset: b.left.span().end_offset,
                    ..b.span()
                },
            )),
        },
        Expr::Compare(c) => {
            check(&c.expr, d)?;
            c.ops.iter().try_for_each(|op| check(&op.expr, d))
        }
        Expr::IfExpr(i) => {
            check(&i.test_expr, d)?;
            check(&i.true_expr, d)?;
            i.false_expr.as_ref().map_or(Ok(()), |e| check(e, d))
        }
        Expr::Test(t) if TESTS.contains(&t.name) => {
            check(&t.expr, d)?;
            check_args(&t.args, d, t.span())
        }
        Expr::Test(t) => Err((
            format!(
                "unknown test `{}`; a filter may use {}",
                t.name,
                TESTS.join(", ")
            ),
            t.span(),
        )),
        Expr::Filter(f) if FILTERS.contains(&f.name) => {
            if let Some(e) = &f.expr {
                check(e, d)?;
            }
            check_args(&f.args, d, f.span())
        }
        Expr::Filter(f) => Err((
            format!(
                "unknown filter `{}`; a filter may use {}",
                f.name,
                FILTERS.join(", ")
            ),
            f.span(),
        )),
        Expr::List(l) => l.items.iter().try_for_each(|e| check(e, d)),
        Expr::Slice(s) => Err((
            "slices are not part of the filter language".into(),
            s.span(),
        )),
        Expr::Call(c) => Err(("calls are not part of the filter language".into(), c.span())),
        Expr::Map(m) => Err((
            "map literals are not part of the filter language".into(),
            m.span(),
        )),
    }
}

fn check_args(args: &[ast::CallArg<'_>], depth: usize, span: Span) -> Result<(), Refusal> {
    for arg in args {
        match arg {
            ast::CallArg::Pos(e) => check(e, depth)?,
            _ => return Err(("only plain arguments are allowed".into(), span)),
        }
    }
    Ok(())
}

/// A minijinja error as a filter error, with its position when it has one.
fn from_minijinja(source: &str, e: &Error) -> FilterError {
    FilterError {
        message: describe(e),
        position: e.range().map(|r| position_at(source, r.start)),
    }
}

fn describe(e: &Error) -> String {
    match (e.kind(), e.detail()) {
        (ErrorKind::OutOfFuel, _) => "took too many steps".into(),
        (ErrorKind::UndefinedError, _) => {
            "reads a field this event does not have (test it with `is defined` first)".into()
        }
        (_, Some(detail)) => format!("{}: {detail}", e.kind()),
        (kind, None) => kind.to_string(),
    }
}

/// Line and column (in characters) of byte `offset` in `source`.
fn position_at(source: &str, offset: usize) -> Position {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Position {
        line,
        column,
        offset,
    }
}

#[cfg(test)]
mod tests;
