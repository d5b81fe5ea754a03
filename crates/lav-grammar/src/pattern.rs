//! JSON Schema `pattern` on a string value: a regex subset compiled to a byte-level
//! DFA and joined with `minLength`/`maxLength`, so that the matcher takes a byte only
//! when the string can still end as a match of an allowed length.
//!
//! Supported: literal characters, `.`, classes such as `[a-z0-9_]` and `[^…]`, the
//! escapes `\d \w \s` (and `\D \W \S`) and escaped punctuation, groups `(…)` and
//! `(?:…)`, alternation `|`, the quantifiers `? * + {n} {n,} {n,m}` (a lazy `?`
//! after one matches the same strings), and anchors: `^` first and `$` last. As JSON
//! Schema says, a pattern without `^` (or `$`) may match anywhere, so it leaves the
//! start (or end) of the string free. Anything else (backreferences, lookaround,
//! `\b`, non-ASCII inside a class) is refused with the reason.
//!
//! The string is a JSON string without escapes (see [`crate::Node::Str`]), so no
//! pattern can produce `"`, `\` or a control character. Lengths count bytes: for
//! ASCII that is characters; with other characters a cap stays a cap.

/// A set of bytes.
type Set = [u64; 4];

const EMPTY: Set = [0; 4];

fn has(s: &Set, b: u8) -> bool {
    s[(b >> 6) as usize] & (1 << (b & 63)) != 0
}

fn add(s: &mut Set, b: u8) {
    s[(b >> 6) as usize] |= 1 << (b & 63);
}

fn union(a: &Set, b: &Set) -> Set {
    std::array::from_fn(|i| a[i] | b[i])
}

fn range(lo: u8, hi: u8) -> Set {
    let mut s = EMPTY;
    for b in lo..=hi {
        add(&mut s, b);
    }
    s
}

/// The bytes an unescaped JSON string may hold.
pub(crate) fn string_byte(b: u8) -> bool {
    b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\'
}

fn string_bytes() -> Set {
    let mut s = EMPTY;
    for b in 0..=255u8 {
        if string_byte(b) {
            add(&mut s, b);
        }
    }
    s
}

/// The ASCII characters a string may hold, less `s`.
fn complement(s: &Set) -> Set {
    let all = ascii();
    std::array::from_fn(|i| all[i] & !s[i])
}

fn ascii() -> Set {
    let mut s = string_bytes();
    s[2] = 0;
    s[3] = 0;
    s
}

/// Any one character: an ASCII one a string may hold, or a whole well-formed UTF-8
/// sequence (so `.` and `[^…]` count characters as the regex crate does).
fn any_char() -> Re {
    Re::Alt(vec![Re::Set(ascii()), non_ascii()])
}

/// Every well-formed multi-byte UTF-8 sequence (RFC 3629, table 3-7).
fn non_ascii() -> Re {
    let seq =
        |ranges: &[(u8, u8)]| Re::Cat(ranges.iter().map(|&(a, b)| Re::Set(range(a, b))).collect());
    let cont = (0x80, 0xbf);
    Re::Alt(vec![
        seq(&[(0xc2, 0xdf), cont]),
        seq(&[(0xe0, 0xe0), (0xa0, 0xbf), cont]),
        seq(&[(0xe1, 0xec), cont, cont]),
        seq(&[(0xed, 0xed), (0x80, 0x9f), cont]),
        seq(&[(0xee, 0xef), cont, cont]),
        seq(&[(0xf0, 0xf0), (0x90, 0xbf), cont, cont]),
        seq(&[(0xf1, 0xf3), cont, cont, cont]),
        seq(&[(0xf4, 0xf4), (0x80, 0x8f), cont, cont]),
    ])
}

/// A class: its ASCII members, and whether it holds every non-ASCII character too.
struct Class {
    ascii: Set,
    non_ascii: bool,
}

impl Class {
    fn re(self) -> Re {
        if self.non_ascii {
            Re::Alt(vec![Re::Set(self.ascii), non_ascii()])
        } else {
            Re::Set(self.ascii)
        }
    }
}

#[derive(Clone, Debug)]
enum Re {
    Set(Set),
    Cat(Vec<Re>),
    Alt(Vec<Re>),
    Rep(Box<Re>, u32, Option<u32>),
}

/// The largest count a `{n,m}` may ask for: patterns here describe short strings.
const MAX_REPEAT: u32 = 200;
const MAX_NFA: usize = 20_000;
const MAX_DFA: usize = 4_000;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn alt(&mut self) -> Result<Re, String> {
        let mut branches = vec![self.cat()?];
        while self.eat(b'|') {
            branches.push(self.cat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().expect("one")
        } else {
            Re::Alt(branches)
        })
    }

    fn cat(&mut self) -> Result<Re, String> {
        let mut items = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'|' || b == b')' {
                break;
            }
            let atom = self.atom()?;
            items.push(self.repeat(atom)?);
        }
        Ok(Re::Cat(items))
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()?
            .parse()
            .ok()
    }

    fn repeat(&mut self, atom: Re) -> Result<Re, String> {
        let (lo, hi) = match self.peek() {
            Some(b'*') => (0, None),
            Some(b'+') => (1, None),
            Some(b'?') => (0, Some(1)),
            Some(b'{') => {
                let save = self.i;
                self.i += 1;
                let Some(lo) = self.number() else {
                    // `{` not followed by a count is a literal brace, as in most engines.
                    self.i = save;
                    return Ok(atom);
                };
                let hi = if self.eat(b',') {
                    if self.peek() == Some(b'}') {
                        None
                    } else {
                        Some(
                            self.number()
                                .ok_or("a `{n,m}` needs a number after the comma")?,
                        )
                    }
                } else {
                    Some(lo)
                };
                if !self.eat(b'}') {
                    return Err("a `{n,m}` is not closed".into());
                }
                if hi.is_some_and(|h| h < lo) || lo.max(hi.unwrap_or(0)) > MAX_REPEAT {
                    return Err(format!(
                        "repetition counts must be in order and at most {MAX_REPEAT}"
                    ));
                }
                self.i -= 1;
                (lo, hi)
            }
            _ => return Ok(atom),
        };
        self.i += 1;
        // A lazy quantifier matches the same set of strings.
        self.eat(b'?');
        if matches!(self.peek(), Some(b'*' | b'+' | b'?' | b'{')) {
            return Err("a quantifier cannot follow another".into());
        }
        Ok(Re::Rep(Box::new(atom), lo, hi))
    }

    fn atom(&mut self) -> Result<Re, String> {
        let b = self.peek().ok_or("unexpected end")?;
        self.i += 1;
        Ok(match b {
            b'(' => {
                if self.eat(b'?') && !self.eat(b':') {
                    return Err("lookaround and named groups are not supported".into());
                }
                let inner = self.alt()?;
                if !self.eat(b')') {
                    return Err("a group is not closed".into());
                }
                inner
            }
            b'[' => self.class()?.re(),
            b'.' => any_char(),
            b'\\' => self.escape(false)?.re(),
            b'^' | b'$' => {
                return Err("`^` and `$` are supported only at the very start and end".into());
            }
            b'*' | b'+' | b'?' => return Err("a quantifier needs something before it".into()),
            b')' => return Err("unbalanced `)`".into()),
            b if b >= 0x80 => {
                // One whole UTF-8 character, so a quantifier after it repeats all of it.
                let start = self.i - 1;
                while self.peek().is_some_and(|c| (0x80..0xc0).contains(&c)) {
                    self.i += 1;
                }
                Re::Cat(
                    self.s[start..self.i]
                        .iter()
                        .map(|&c| Re::Set(range(c, c)))
                        .collect(),
                )
            }
            b => Re::Set(range(b, b)),
        })
    }

    /// After `\`: a class escape or an escaped character.
    fn escape(&mut self, in_class: bool) -> Result<Class, String> {
        let b = self.peek().ok_or("a pattern cannot end in `\\`")?;
        self.i += 1;
        let digit = range(b'0', b'9');
        let word = union(
            &union(&digit, &range(b'a', b'z')),
            &union(&range(b'A', b'Z'), &range(b'_', b'_')),
        );
        // Of the whitespace characters only the space can stand unescaped in JSON.
        let space = range(b' ', b' ');
        let only = |ascii: Set| Class {
            ascii,
            non_ascii: false,
        };
        let not = |s: &Set| Class {
            ascii: complement(s),
            non_ascii: true,
        };
        Ok(match b {
            b'd' => only(digit),
            b'D' => not(&digit),
            b'w' => only(word),
            b'W' => not(&word),
            b's' => only(space),
            b'S' => not(&space),
            // Control characters cannot appear in the unescaped string at all.
            b'n' | b't' | b'r' | b'f' | b'v' => only(EMPTY),
            b'b' if in_class => only(EMPTY),
            b if b.is_ascii_alphanumeric() => {
                return Err(format!("the escape `\\{}` is not supported", b as char));
            }
            b if b < 0x80 => only(range(b, b)),
            _ => return Err("escaped non-ASCII characters are not supported".into()),
        })
    }

    fn class(&mut self) -> Result<Class, String> {
        let negate = self.eat(b'^');
        let mut set = EMPTY;
        let mut non_ascii = false;
        let mut first = true;
        loop {
            let b = self.peek().ok_or("a class `[` is not closed")?;
            if b == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            self.i += 1;
            let lo = match b {
                b'\\' => {
                    let c = self.escape(true)?;
                    // A single escaped character may start a range; a class escape may not.
                    match single(&c.ascii).filter(|_| !c.non_ascii) {
                        Some(c) => c,
                        None => {
                            set = union(&set, &c.ascii);
                            non_ascii |= c.non_ascii;
                            continue;
                        }
                    }
                }
                b if b >= 0x80 => {
                    return Err("non-ASCII characters in a class are not supported".into());
                }
                b => b,
            };
            if self.peek() == Some(b'-') && self.s.get(self.i + 1).is_some_and(|&c| c != b']') {
                self.i += 1;
                let hi = match self.peek() {
                    Some(b'\\') => {
                        self.i += 1;
                        let c = self.escape(true)?;
                        single(&c.ascii)
                            .filter(|_| !c.non_ascii)
                            .ok_or("a class escape cannot end a range")?
                    }
                    Some(c) if c < 0x80 => {
                        self.i += 1;
                        c
                    }
                    _ => return Err("non-ASCII characters in a class are not supported".into()),
                };
                if hi < lo {
                    return Err("a class range is out of order".into());
                }
                set = union(&set, &range(lo, hi));
            } else {
                add(&mut set, lo);
            }
        }
        Ok(if negate {
            Class {
                ascii: complement(&set),
                non_ascii: !non_ascii,
            }
        } else {
            Class {
                ascii: set,
                non_ascii,
            }
        })
    }
}

/// The one byte in `s`, if it holds exactly one.
fn single(s: &Set) -> Option<u8> {
    let mut it = (0..=255u8).filter(|&b| has(s, b));
    match (it.next(), it.next()) {
        (Some(b), None) => Some(b),
        _ => None,
    }
}

/// A Thompson NFA: per state, ε-moves and at most one byte-set move.
#[derive(Default)]
struct Nfa {
    eps: Vec<Vec<usize>>,
    edge: Vec<Option<(Set, usize)>>,
}

impl Nfa {
    fn state(&mut self) -> Result<usize, String> {
        if self.eps.len() >= MAX_NFA {
            return Err("the pattern is too large".into());
        }
        self.eps.push(Vec::new());
        self.edge.push(None);
        Ok(self.eps.len() - 1)
    }

    /// A fragment for `re`: its (start, end).
    fn build(&mut self, re: &Re) -> Result<(usize, usize), String> {
        let a = self.state()?;
        let mut end = a;
        match re {
            Re::Set(s) => {
                end = self.state()?;
                self.edge[a] = Some((*s, end));
            }
            Re::Cat(items) => {
                for r in items {
                    let (s, e) = self.build(r)?;
                    self.eps[end].push(s);
                    end = e;
                }
            }
            Re::Alt(branches) => {
                end = self.state()?;
                for r in branches {
                    let (s, e) = self.build(r)?;
                    self.eps[a].push(s);
                    self.eps[e].push(end);
                }
            }
            Re::Rep(r, lo, hi) => {
                for _ in 0..*lo {
                    let (s, e) = self.build(r)?;
                    self.eps[end].push(s);
                    end = e;
                }
                match hi {
                    None => {
                        let (s, e) = self.build(r)?;
                        let out = self.state()?;
                        self.eps[end].extend([s, out]);
                        self.eps[e].extend([s, out]);
                        end = out;
                    }
                    Some(hi) => {
                        for _ in *lo..*hi {
                            let (s, e) = self.build(r)?;
                            let out = self.state()?;
                            self.eps[end].extend([s, out]);
                            self.eps[e].push(out);
                            end = out;
                        }
                    }
                }
            }
        }
        Ok((a, end))
    }

    fn closure(&self, mut states: Vec<usize>) -> Vec<usize> {
        let mut seen = vec![false; self.eps.len()];
        let mut stack = states.clone();
        for &s in &states {
            seen[s] = true;
        }
        while let Some(s) = stack.pop() {
            for &t in &self.eps[s] {
                if !seen[t] {
                    seen[t] = true;
                    states.push(t);
                    stack.push(t);
                }
            }
        }
        states.sort_unstable();
        states
    }
}

/// No state: the byte is refused.
const DEAD: u16 = u16::MAX;
/// The bytes still needed is unknown: no completion exists.
const NEVER: u8 = u8::MAX;

/// A compiled string constraint: the pattern's DFA and the length bounds, with, for
/// every (state, length), the fewest bytes that finish a valid string.
#[derive(Clone)]
pub struct Pattern {
    /// The schema's text, for messages.
    pub source: String,
    pub min_len: usize,
    pub max_len: usize,
    trans: Vec<[u16; 256]>,
    accept: Vec<bool>,
    /// `need[state * (max_len + 1) + len]`: bytes still needed, or [`NEVER`].
    need: Vec<u8>,
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pattern({:?}, {}..={} bytes, {} states)",
            self.source,
            self.min_len,
            self.max_len,
            self.trans.len()
        )
    }
}

impl Pattern {
    /// Compiles `pattern` (or any string, if `None`) with lengths in
    /// `min_len..=max_len` bytes. `max_len` must stay below 255.
    pub fn new(pattern: Option<&str>, min_len: usize, max_len: usize) -> Result<Pattern, String> {
        let source = pattern.unwrap_or("").to_string();
        if max_len >= NEVER as usize {
            return Err(format!("a length cap of {max_len} is too long here"));
        }
        let mut p = source.as_bytes();
        let anchored_start = p.first() == Some(&b'^');
        if anchored_start {
            p = &p[1..];
        }
        // A `$` ends the pattern unless it is escaped (an odd run of `\` before it).
        let anchored_end = p.last() == Some(&b'$')
            && p[..p.len() - 1]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count()
                % 2
                == 0;
        if anchored_end {
            p = &p[..p.len() - 1];
        }
        let mut parser = Parser { s: p, i: 0 };
        let body = parser.alt()?;
        if parser.i != p.len() {
            return Err("unbalanced `)`".into());
        }
        let free = || Re::Rep(Box::new(any_char()), 0, None);
        let mut parts = Vec::new();
        if !anchored_start {
            parts.push(free());
        }
        parts.push(body);
        if !anchored_end {
            parts.push(free());
        }
        let mut nfa = Nfa::default();
        let (start, end) = nfa.build(&Re::Cat(parts))?;
        // Subset construction over the bytes a string may hold.
        let first = nfa.closure(vec![start]);
        let mut ids = std::collections::HashMap::from([(first.clone(), 0u16)]);
        let mut sets = vec![first];
        let mut trans: Vec<[u16; 256]> = Vec::new();
        let mut accept = Vec::new();
        let mut i = 0;
        while i < sets.len() {
            let cur = sets[i].clone();
            accept.push(cur.binary_search(&end).is_ok());
            let mut row = [DEAD; 256];
            for b in (0..=255u8).filter(|&b| string_byte(b)) {
                let next: Vec<usize> = cur
                    .iter()
                    .filter_map(|&s| nfa.edge[s].filter(|(set, _)| has(set, b)).map(|(_, t)| t))
                    .collect();
                if next.is_empty() {
                    continue;
                }
                let next = nfa.closure(next);
                let id = match ids.get(&next) {
                    Some(&id) => id,
                    None => {
                        if sets.len() >= MAX_DFA {
                            return Err("the pattern needs too many states".into());
                        }
                        let id = sets.len() as u16;
                        ids.insert(next.clone(), id);
                        sets.push(next);
                        id
                    }
                };
                row[b as usize] = id;
            }
            trans.push(row);
            i += 1;
        }
        let mut pat = Pattern {
            source,
            min_len,
            max_len,
            trans,
            accept,
            need: Vec::new(),
        };
        pat.fill_need();
        if pat.need(0, 0) == NEVER {
            return Err(format!(
                "no string of {min_len} to {max_len} characters matches it"
            ));
        }
        Ok(pat)
    }

    /// From the longest length down: a state at length `len` is finished if it
    /// accepts there, or is one byte from a state that can finish at `len + 1`.
    fn fill_need(&mut self) {
        let w = self.max_len + 1;
        let n = self.trans.len();
        let succ: Vec<Vec<u16>> = self
            .trans
            .iter()
            .map(|row| {
                let mut v: Vec<u16> = row.iter().copied().filter(|&t| t != DEAD).collect();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        self.need = vec![NEVER; n * w];
        for len in (0..w).rev() {
            for (s, next) in succ.iter().enumerate() {
                let mut best = if self.accept[s] && len >= self.min_len {
                    0
                } else {
                    NEVER
                };
                if len < self.max_len {
                    for &t in next {
                        let k = self.need[t as usize * w + len + 1];
                        if k != NEVER {
                            best = best.min(k + 1);
                        }
                    }
                }
                self.need[s * w + len] = best;
            }
        }
    }

    /// The fewest bytes that finish a string from `state` at `len` bytes, or 255.
    pub(crate) fn need(&self, state: u16, len: usize) -> u8 {
        if len > self.max_len {
            return NEVER;
        }
        self.need[state as usize * (self.max_len + 1) + len]
    }

    /// The state after `b`, if a valid string can still be finished from it.
    pub(crate) fn step(&self, state: u16, len: usize, b: u8) -> Option<u16> {
        let t = self.trans[state as usize][b as usize];
        (t != DEAD && self.need(t, len + 1) != NEVER).then_some(t)
    }

    /// The string may end here.
    pub(crate) fn can_end(&self, state: u16, len: usize) -> bool {
        self.accept[state as usize] && len >= self.min_len && len <= self.max_len
    }

    /// Whether `s` (without quotes) is a valid value.
    pub fn matches(&self, s: &str) -> bool {
        let mut state = 0u16;
        for (len, &b) in s.as_bytes().iter().enumerate() {
            match self.step(state, len, b) {
                Some(t) => state = t,
                None => return false,
            }
        }
        self.can_end(state, s.len())
    }
}
