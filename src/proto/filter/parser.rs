//! Recursive-descent parser for the RFC 7644 §3.4.2.2 grammar:
//!
//! ```text
//! filter    = or
//! or        = and *("or" and)
//! and       = unary *("and" unary)
//! unary     = "not" "(" or ")" / "(" or ")" / attrExp / valuePath ["." subAttr op value]
//! attrExp   = attrPath "pr" / attrPath compareOp compValue
//! valuePath = attrPath "[" valFilter "]"        ; valFilter: the same grammar, no valuePath
//! ```
//!
//! The input is decoded into `char`s once, so every position is a character index and no
//! slicing can land inside a UTF-8 sequence. Every failure reports the 1-based character
//! position and what was expected there. Recursion is bounded by `MAX_DEPTH`, `and`/`or`
//! chains are loops, so no input can exhaust the stack.

use super::{
    AttrPath, CompareOp, Comparison, Filter, Literal, PosError, MAX_COMPARISONS, MAX_DEPTH,
    MAX_FILTER_BYTES,
};

const OPERATORS: &str = "(eq, ne, co, sw, ew, gt, ge, lt, le, pr)";
const VALUE: &str = "a value (a JSON string, number, true, false or null)";

type PResult<T> = Result<T, PosError>;

pub(crate) fn parse_filter(input: &str) -> PResult<Filter> {
    check_length(input)?;
    let mut p = Parser::new(input);
    p.skip_ws();
    if p.at_end() {
        return Err(p.err(
            p.pos,
            "the filter is empty; expected an attribute path, '(' or 'not'",
        ));
    }
    let f = p.parse_or(Ctx::Top)?;
    p.skip_ws();
    match p.peek() {
        None => Ok(f),
        Some(')') => Err(p.err(p.pos, "unexpected ')' without a matching '('")),
        Some(']') => Err(p.err(p.pos, "unexpected ']' without a matching '['")),
        Some(_) => Err(p.err(p.pos, "expected 'and', 'or' or the end of the filter")),
    }
}

pub(crate) fn parse_attr_path(input: &str) -> PResult<AttrPath> {
    check_length(input)?;
    let mut p = Parser::new(input);
    p.skip_ws();
    let path = p.attr_path()?;
    p.skip_ws();
    match p.peek() {
        None => Ok(path),
        Some(_) => Err(p.err(p.pos, "expected the end of the attribute path")),
    }
}

/// A PATCH operation's `path` (RFC 7644 §3.5.2: `attrPath / valuePath ["." subAttr]`), read
/// with the filter's own attribute-path and value-filter rules so that PATCH has no grammar of
/// its own. On failure, `true` marks an error in the filter between the brackets; the brackets
/// themselves (missing `]`, empty or nested `[...]`) and everything else belong to the path.
pub(crate) fn parse_patch_path(input: &str) -> Result<super::PatchPath, (bool, PosError)> {
    let path_err = |e| (false, e);
    check_length(input).map_err(path_err)?;
    let mut p = Parser::new(input);
    p.skip_ws();
    let path = p.attr_path().map_err(path_err)?;
    let mut out = super::PatchPath {
        path,
        filter: None,
        sub: None,
    };
    if p.peek() == Some('[') {
        out.filter = Some(p.patch_value_filter(&out.path)?);
        if p.peek() == Some('.') {
            p.pos += 1;
            let sub = p.name_segment("a sub-attribute name after '].'");
            out.sub = Some(sub.map_err(path_err)?);
        }
    }
    p.skip_ws();
    match p.peek() {
        None => Ok(out),
        Some(_) => Err((
            false,
            p.err(p.pos, "expected '[', '.' or the end of the path"),
        )),
    }
}

impl Parser {
    /// `"[" valFilter "]"` of a PATCH path, with the cursor on the `[`.
    fn patch_value_filter(&mut self, path: &AttrPath) -> Result<Filter, (bool, PosError)> {
        let open = self.pos;
        if path.sub.is_some() {
            let msg = format!(
                "a value filter '[...]' applies to an attribute, not to the sub-attribute '{path}'"
            );
            return Err((false, self.err(open, msg)));
        }
        self.pos += 1;
        self.skip_ws();
        if matches!(self.peek(), None | Some(']')) {
            return Err((false, self.err(self.pos, "the value filter is empty")));
        }
        self.enter(open).map_err(|e| (false, e))?;
        // Running off the end (an unclosed `[`) or into a nested `[` is the path's fault.
        let structural = |p: &Parser, e: &PosError| {
            matches!(p.chars.get(e.pos.saturating_sub(1)), None | Some('['))
        };
        let inner = self
            .parse_or(Ctx::InBrackets)
            .map_err(|e| (!structural(self, &e), e))?;
        self.skip_ws();
        if self.peek() != Some(']') {
            let e = self.err(
                self.pos,
                format!(
                    "expected 'and', 'or' or ']' to close the '[' at position {}",
                    open + 1
                ),
            );
            return Err((!structural(self, &e), e));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(inner)
    }
}

fn check_length(input: &str) -> PResult<()> {
    if input.len() > MAX_FILTER_BYTES {
        let pos = input
            .char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= MAX_FILTER_BYTES)
            .count()
            + 1;
        return Err(PosError::new(
            pos,
            format!("the filter is longer than {MAX_FILTER_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Where an expression occurs: value filters (`emails[...]`) may not contain value paths.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    InBrackets,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    comparisons: usize,
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | ':' | '.')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$')
}

impl Parser {
    fn new(input: &str) -> Parser {
        Parser {
            chars: input.chars().collect(),
            pos: 0,
            depth: 0,
            comparisons: 0,
        }
    }

    fn err(&self, index: usize, msg: impl Into<String>) -> PosError {
        PosError::new(index + 1, msg)
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.chars
            .get(from..to)
            .map(|s| s.iter().collect())
            .unwrap_or_default()
    }

    /// The length of the run of ASCII letters starting at `at` (not consumed).
    fn word_len(&self, at: usize) -> usize {
        self.chars
            .get(at..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count()
    }

    /// Whether the run of ASCII letters at `at` is `kw`, case-insensitively. Checked at every
    /// operand boundary (`and`, `or`, `not`), so it compares in place instead of collecting.
    fn word_is(&self, at: usize, kw: &str) -> bool {
        let rest = self.chars.get(at..).unwrap_or_default();
        self.word_len(at) == kw.len()
            && rest
                .iter()
                .zip(kw.chars())
                .all(|(c, k)| c.eq_ignore_ascii_case(&k))
    }

    /// Consumes `kw` (case-insensitively) if it is the next word and is followed by
    /// whitespace, `(` or the end (where the missing operand is then reported).
    fn keyword(&mut self, kw: &str) -> bool {
        let next = self.chars.get(self.pos + kw.len()).copied();
        if self.word_is(self.pos, kw) && next.is_none_or(|c| c.is_ascii_whitespace() || c == '(') {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self, at: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                at,
                format!("the filter nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn parse_or(&mut self, ctx: Ctx) -> PResult<Filter> {
        self.parse_chain(ctx, "or", Self::parse_and, Filter::Or)
    }

    fn parse_and(&mut self, ctx: Ctx) -> PResult<Filter> {
        self.parse_chain(ctx, "and", Self::parse_unary, Filter::And)
    }

    /// `operand (keyword operand)*`: one level of the precedence ladder. A lone operand is
    /// returned as is, so `And`/`Or` always hold two or more operands.
    fn parse_chain(
        &mut self,
        ctx: Ctx,
        keyword: &str,
        operand: fn(&mut Self, Ctx) -> PResult<Filter>,
        combine: fn(Vec<Filter>) -> Filter,
    ) -> PResult<Filter> {
        let mut items = vec![operand(self, ctx)?];
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.keyword(keyword) {
                items.push(operand(self, ctx)?);
            } else {
                self.pos = save;
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            combine(items)
        })
    }

    fn parse_unary(&mut self, ctx: Ctx) -> PResult<Filter> {
        self.skip_ws();
        if self.peek() == Some('(') {
            return self.parenthesised(ctx);
        }
        let after = self.chars.get(self.pos + 3).copied();
        if self.word_is(self.pos, "not") && !after.is_some_and(is_path_char) {
            self.pos += 3;
            self.skip_ws();
            if self.peek() != Some('(') {
                return Err(self.err(self.pos, "expected '(' after 'not'"));
            }
            return Ok(Filter::Not(Box::new(self.parenthesised(ctx)?)));
        }
        self.attr_expr(ctx)
    }

    /// `"(" or ")"` with the cursor on the `(`.
    fn parenthesised(&mut self, ctx: Ctx) -> PResult<Filter> {
        let open = self.pos;
        self.enter(open)?;
        self.pos += 1;
        let inner = self.parse_or(ctx)?;
        self.skip_ws();
        if self.peek() != Some(')') {
            return Err(self.err(
                self.pos,
                format!(
                    "expected 'and', 'or' or ')' to close the '(' at position {}",
                    open + 1
                ),
            ));
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(inner)
    }

    fn attr_expr(&mut self, ctx: Ctx) -> PResult<Filter> {
        let path = self.attr_path()?;
        if self.peek() == Some('[') {
            return self.value_path(path, ctx);
        }
        self.count_comparison(path.pos)?;
        self.operation(path)
    }

    fn count_comparison(&mut self, pos: usize) -> PResult<()> {
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(PosError::new(
                pos,
                format!("the filter has more than {MAX_COMPARISONS} comparisons"),
            ));
        }
        Ok(())
    }

    /// `"[" valFilter "]"` and Entra's optional `"." subAttr op value` after it.
    fn value_path(&mut self, path: AttrPath, ctx: Ctx) -> PResult<Filter> {
        let open = self.pos;
        if ctx == Ctx::InBrackets {
            return Err(self.err(open, "value filters cannot be nested"));
        }
        if path.sub.is_some() {
            return Err(self.err(open, format!("expected a comparison operator {OPERATORS} after '{path}'; a value filter '[...]' applies to an attribute, not to a sub-attribute")));
        }
        self.enter(open)?;
        self.pos += 1;
        let inner = self.parse_or(Ctx::InBrackets)?;
        self.skip_ws();
        if self.peek() != Some(']') {
            return Err(self.err(
                self.pos,
                format!(
                    "expected 'and', 'or' or ']' to close the '[' at position {}",
                    open + 1
                ),
            ));
        }
        self.pos += 1;
        self.depth -= 1;
        if self.peek() != Some('.') {
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(inner),
            });
        }
        self.pos += 1;
        let sub_at = self.pos;
        let name = self.name_segment("a sub-attribute name after '].'")?;
        let sub = AttrPath {
            urn: None,
            name,
            sub: None,
            pos: sub_at + 1,
        };
        self.count_comparison(sub.pos)?;
        let cmp = self.operation(sub)?;
        Ok(Filter::ValuePath {
            path,
            filter: Box::new(Filter::And(vec![inner, cmp])),
        })
    }

    /// A bare attribute name (used after `].`).
    fn name_segment(&mut self, what: &str) -> PResult<String> {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        let name = self.text(start, self.pos);
        if !valid_name(&name) {
            return Err(self.err(start, format!("expected {what}")));
        }
        Ok(name)
    }

    /// `pr` or `compareOp SP compValue`, after the attribute path.
    fn operation(&mut self, path: AttrPath) -> PResult<Filter> {
        let expected = || format!("expected a comparison operator {OPERATORS} after '{path}'");
        if !self.skip_ws() {
            return Err(self.err(self.pos, expected()));
        }
        let op_at = self.pos;
        let after = op_at + self.word_len(op_at);
        if self.word_is(op_at, "pr") {
            self.pos = after;
            self.end_of_operand()?;
            return Ok(Filter::Present(path));
        }
        let Some(op) = CompareOp::ALL
            .into_iter()
            .find(|op| self.word_is(op_at, op.as_str()))
        else {
            return Err(self.err(op_at, expected()));
        };
        self.pos = after;
        if !self.skip_ws() {
            return Err(self.err(
                self.pos,
                format!("expected a space and then {VALUE} after '{}'", op.as_str()),
            ));
        }
        let value_at = self.pos;
        let value = self.literal(op)?;
        self.end_of_operand()?;
        Ok(Filter::Compare(Comparison {
            path,
            op,
            value,
            op_pos: op_at + 1,
            value_pos: value_at + 1,
        }))
    }

    /// After a value or `pr`: whitespace, `)`, `]` or the end must follow.
    fn end_of_operand(&self) -> PResult<()> {
        match self.peek() {
            None | Some(')') | Some(']') => Ok(()),
            Some(c) if c.is_ascii_whitespace() => Ok(()),
            Some(_) => Err(self.err(
                self.pos,
                "expected a space, 'and', 'or', ')' or the end of the filter",
            )),
        }
    }

    /// `[URN ":"] ATTRNAME ["." ATTRNAME]`. URNs contain `.` and `:` themselves, so the path is
    /// read as one run and split at the last `:`.
    fn attr_path(&mut self) -> PResult<AttrPath> {
        let start = self.pos;
        while self.peek().is_some_and(is_path_char) {
            self.pos += 1;
        }
        if self.pos == start {
            let msg = match self.peek() {
                None => {
                    "expected an attribute path, '(' or 'not' at the end of the filter".to_string()
                }
                Some(c) => format!("expected an attribute path, '(' or 'not', found '{c}'"),
            };
            return Err(self.err(start, msg));
        }
        let (urn, name_at) = self.urn_prefix(start, self.pos)?;
        let (name, sub) = self.name_and_sub(name_at, self.pos, urn.is_some())?;
        Ok(AttrPath {
            urn,
            name,
            sub,
            pos: start + 1,
        })
    }

    /// The schema URN of the path in `start..end` (up to its last `:`), and where the
    /// attribute name starts.
    fn urn_prefix(&self, start: usize, end: usize) -> PResult<(Option<String>, usize)> {
        let colon = (start..end)
            .rev()
            .find(|&i| self.chars.get(i) == Some(&':'));
        let Some(colon) = colon else {
            return Ok((None, start));
        };
        let urn = self.text(start, colon);
        if !urn.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return Err(self.err(start, "expected a schema URN before ':'"));
        }
        Ok((Some(urn), colon + 1))
    }

    /// `ATTRNAME ["." ATTRNAME]` in `start..end`.
    fn name_and_sub(
        &self,
        start: usize,
        end: usize,
        after_urn: bool,
    ) -> PResult<(String, Option<String>)> {
        let rest = self.text(start, end);
        let mut segments = rest.split('.');
        let name = segments.next().unwrap_or_default().to_string();
        if !valid_name(&name) {
            let what = if after_urn {
                "an attribute name after the schema URN"
            } else {
                "an attribute name"
            };
            return Err(self.err(start, format!("expected {what}, found '{rest}'")));
        }
        let sub_at = start + name.chars().count() + 1;
        let sub = match segments.next() {
            None => None,
            Some(s) if valid_name(s) => Some(s.to_string()),
            Some(s) => {
                let msg = format!("expected a sub-attribute name after '{name}.', found '{s}'");
                return Err(self.err(sub_at, msg));
            }
        };
        if segments.next().is_some() {
            let at = sub_at + sub.as_deref().map_or(0, |s| s.chars().count());
            return Err(self.err(at, "an attribute path has at most one sub-attribute"));
        }
        Ok((name, sub))
    }

    fn literal(&mut self, op: CompareOp) -> PResult<Literal> {
        match self.peek() {
            Some('"') => self.string().map(Literal::String),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let lit = if self.word_is(self.pos, "true") {
                    Literal::Bool(true)
                } else if self.word_is(self.pos, "false") {
                    Literal::Bool(false)
                } else if self.word_is(self.pos, "null") {
                    Literal::Null
                } else {
                    return Err(self.err(
                        self.pos,
                        format!(
                            "expected {VALUE} after '{}'; strings must be in double quotes",
                            op.as_str()
                        ),
                    ));
                };
                self.pos += self.word_len(self.pos);
                Ok(lit)
            }
            _ => Err(self.err(
                self.pos,
                format!("expected {VALUE} after '{}'", op.as_str()),
            )),
        }
    }

    /// A JSON string with the cursor on the opening quote.
    fn string(&mut self) -> PResult<String> {
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let at = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.err(
                    at,
                    format!(
                        "expected '\"' to end the string that starts at position {}",
                        open + 1
                    ),
                ));
            };
            self.pos += 1;
            match c {
                '"' => return Ok(out),
                '\\' => out.push(self.escape(at)?),
                c if (c as u32) < 0x20 => {
                    return Err(self.err(
                        at,
                        "control characters in strings must be escaped (e.g. \\n)",
                    ));
                }
                c => out.push(c),
            }
        }
    }

    /// The character of an escape sequence whose backslash is at `at`.
    fn escape(&mut self, at: usize) -> PResult<char> {
        let Some(c) = self.peek() else {
            return Err(self.err(self.pos, "expected an escape character after '\\'"));
        };
        self.pos += 1;
        let ch = match c {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => self.unicode_escape(at)?,
            other => {
                return Err(self.err(
                    at,
                    format!("invalid escape '\\{other}'; expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX"),
                ))
            }
        };
        if ch == '\0' {
            return Err(self.err(at, "NUL characters are not allowed in filter values"));
        }
        Ok(ch)
    }

    /// `\uXXXX`, or a surrogate pair `\uD83D\uDE00`, after the `\u` at `at`.
    fn unicode_escape(&mut self, at: usize) -> PResult<char> {
        let hi = self.hex4(at)?;
        if (0xDC00..0xE000).contains(&hi) {
            return Err(self.err(at, "unpaired low surrogate in \\u escape"));
        }
        if !(0xD800..0xDC00).contains(&hi) {
            return char::from_u32(hi).ok_or_else(|| self.err(at, "invalid \\u escape"));
        }
        let low_at = self.pos;
        if self.peek() != Some('\\') || self.chars.get(self.pos + 1) != Some(&'u') {
            return Err(self.err(
                low_at,
                "expected a \\u escape with the low surrogate after a high surrogate",
            ));
        }
        self.pos += 2;
        let lo = self.hex4(low_at)?;
        if !(0xDC00..0xE000).contains(&lo) {
            return Err(self.err(
                low_at,
                "expected a low surrogate (\\uDC00-\\uDFFF) after a high surrogate",
            ));
        }
        let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        char::from_u32(code).ok_or_else(|| self.err(at, "invalid surrogate pair"))
    }

    fn hex4(&mut self, at: usize) -> PResult<u32> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self.peek().and_then(|c| c.to_digit(16));
            let Some(d) = d else {
                return Err(self.err(at, "expected 4 hexadecimal digits after '\\u'"));
            };
            v = v * 16 + d;
            self.pos += 1;
        }
        Ok(v)
    }

    /// A JSON number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> PResult<Literal> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        if !self.digits() {
            return Err(self.err(self.pos, "expected a digit in the number"));
        }
        if self.chars.get(int_start) == Some(&'0') && self.pos - int_start > 1 {
            return Err(self.err(int_start, "numbers must not have leading zeros"));
        }
        let mut integral = true;
        if self.peek() == Some('.') {
            self.pos += 1;
            integral = false;
            if !self.digits() {
                return Err(self.err(self.pos, "expected a digit after the decimal point"));
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            integral = false;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            if !self.digits() {
                return Err(self.err(self.pos, "expected a digit in the exponent"));
            }
        }
        let text = self.text(start, self.pos);
        if integral {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Literal::Integer(i));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Literal::Decimal(f)),
            _ => Err(self.err(start, format!("the number {text} is out of range"))),
        }
    }

    fn digits(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos > start
    }
}

/// RFC 7643 `ATTRNAME = ALPHA *(nameChar)`, plus the `$ref` sub-attribute names.
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = match chars.next() {
        Some('$') => true,
        Some(c) => c.is_ascii_alphabetic(),
        None => false,
    };
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
