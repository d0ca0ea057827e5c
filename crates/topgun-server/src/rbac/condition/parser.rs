//! The condition parser: recursive descent over tokens, with a nesting limit, into the flat AST of the parent module.

use super::lexer::{Tok, Token};
use super::{CmpOp, Expr, Lit, MAX_DEPTH, Root, Step};
use crate::rbac::error::{ConditionError, ConditionErrorKind};

/// Parses a whole condition; `end` is its length in characters, the
/// position reported for an early end.
pub(super) fn parse(tokens: &[Token], end: usize) -> Result<Expr, ConditionError> {
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        end,
    };
    let expr = parser.or()?;
    match parser.peek() {
        None => Ok(expr),
        Some(token) => Err(parser.unexpected(token, "an operator or the end of the condition")),
    }
}

struct Parser<'t> {
    tokens: &'t [Token],
    next: usize,
    depth: usize,
    end: usize,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.next)
    }

    fn bump(&mut self) -> Option<&'t Token> {
        let token = self.tokens.get(self.next);
        self.next += 1;
        token
    }

    fn unexpected(&self, token: &Token, expected: &'static str) -> ConditionError {
        ConditionError {
            position: token.position,
            kind: ConditionErrorKind::UnexpectedToken {
                found: token.kind.describe(),
                expected,
            },
        }
    }

    fn end_error(&self, expected: &'static str) -> ConditionError {
        ConditionError {
            position: self.end,
            kind: ConditionErrorKind::UnexpectedEnd { expected },
        }
    }

    /// Enters one level of nesting at `position`.
    fn descend(&mut self, position: usize) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ConditionError {
                position,
                kind: ConditionErrorKind::TooDeep { max: MAX_DEPTH },
            });
        }
        Ok(())
    }

    fn expect(&mut self, kind: &Tok, expected: &'static str) -> Result<(), ConditionError> {
        match self.bump() {
            Some(token) if token.kind == *kind => Ok(()),
            Some(token) => Err(self.unexpected(token, expected)),
            None => Err(self.end_error(expected)),
        }
    }

    /// `and ("||" and)*`, flattened.
    fn or(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.and()?];
        while self.peek().is_some_and(|t| t.kind == Tok::Or) {
            self.next += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::Or(items.into_boxed_slice())
        })
    }

    /// `comparison ("&&" comparison)*`, flattened.
    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut items = vec![self.comparison()?];
        while self.peek().is_some_and(|t| t.kind == Tok::And) {
            self.next += 1;
            items.push(self.comparison()?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Expr::And(items.into_boxed_slice())
        })
    }

    /// `unary (cmp-op unary)?`: comparisons do not chain.
    fn comparison(&mut self) -> Result<Expr, ConditionError> {
        let left = self.unary()?;
        let Some((op, position)) = self
            .peek()
            .and_then(|t| cmp_op(&t.kind).map(|op| (op, t.position)))
        else {
            return Ok(left);
        };
        self.next += 1;
        let right = self.unary()?;
        if let Some(token) = self.peek() {
            if cmp_op(&token.kind).is_some() {
                return Err(self.unexpected(
                    token,
                    "`&&`, `||`, `)` or the end (comparisons do not chain; use parentheses)",
                ));
            }
        }
        Ok(Expr::Compare {
            op,
            left: Box::new(left),
            right: Box::new(right),
            position,
        })
    }

    /// `"!" unary | primary`.
    fn unary(&mut self) -> Result<Expr, ConditionError> {
        match self.peek() {
            Some(token) if token.kind == Tok::Not => {
                self.next += 1;
                self.descend(token.position)?;
                let operand = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not {
                    operand: Box::new(operand),
                    position: token.position,
                })
            }
            _ => self.primary(),
        }
    }

    /// A literal, a path, a parenthesized expression or an array.
    fn primary(&mut self) -> Result<Expr, ConditionError> {
        const EXPECTED: &str = "a value (a literal, an array, `(`, or auth, key, old, new, op)";
        let Some(token) = self.bump() else {
            return Err(self.end_error(EXPECTED));
        };
        let position = token.position;
        let lit = |value| Ok(Expr::Lit { value, position });
        match &token.kind {
            Tok::Str(s) => lit(Lit::Str(s.as_str().into())),
            Tok::Int(i) => lit(Lit::Int(*i)),
            Tok::Float(f) => lit(Lit::Float(*f)),
            Tok::Ident(name) => match name.as_str() {
                "true" => lit(Lit::Bool(true)),
                "false" => lit(Lit::Bool(false)),
                "null" => lit(Lit::Null),
                "auth" => self.path(Root::Auth, position),
                "old" => self.path(Root::Old, position),
                "new" => self.path(Root::New, position),
                "key" => self.path(Root::Key, position),
                "op" => self.path(Root::Op, position),
                "in" => Err(self.unexpected(token, EXPECTED)),
                _ => Err(ConditionError {
                    position,
                    kind: ConditionErrorKind::UnknownIdentifier(name.clone()),
                }),
            },
            Tok::LParen => {
                self.descend(position)?;
                let inner = self.or()?;
                self.expect(&Tok::RParen, "`)`")?;
                self.depth -= 1;
                Ok(inner)
            }
            Tok::LBracket => {
                self.descend(position)?;
                let mut items = Vec::new();
                loop {
                    if self.peek().is_some_and(|t| t.kind == Tok::RBracket) {
                        self.next += 1;
                        break;
                    }
                    items.push(self.or()?);
                    match self.bump() {
                        Some(t) if t.kind == Tok::Comma => {}
                        Some(t) if t.kind == Tok::RBracket => break,
                        Some(t) => return Err(self.unexpected(t, "`,` or `]`")),
                        None => return Err(self.end_error("`,` or `]`")),
                    }
                }
                self.depth -= 1;
                Ok(Expr::Array {
                    items: items.into_boxed_slice(),
                    position,
                })
            }
            _ => Err(self.unexpected(token, EXPECTED)),
        }
    }

    /// Member steps after a root: `.name`, `["name"]`, `[index]`.
    fn path(&mut self, root: Root, position: usize) -> Result<Expr, ConditionError> {
        let mut steps = Vec::new();
        while let Some(token) = self.peek() {
            let step = match token.kind {
                Tok::Dot => {
                    self.next += 1;
                    match self.bump() {
                        Some(Token {
                            kind: Tok::Ident(name),
                            ..
                        }) => Step::Field(name.as_str().into()),
                        Some(t) => return Err(self.unexpected(t, "a member name")),
                        None => return Err(self.end_error("a member name")),
                    }
                }
                Tok::LBracket => {
                    self.next += 1;
                    let step = match self.bump() {
                        Some(Token {
                            kind: Tok::Str(name),
                            ..
                        }) => Step::Field(name.as_str().into()),
                        Some(Token {
                            kind: Tok::Int(i), ..
                        }) if *i >= 0 => Step::Index(usize::try_from(*i).unwrap_or(usize::MAX)),
                        Some(t) => {
                            return Err(
                                self.unexpected(t, "a string or a non-negative integer index")
                            );
                        }
                        None => return Err(self.end_error("a string or an index")),
                    };
                    self.expect(&Tok::RBracket, "`]`")?;
                    step
                }
                _ => break,
            };
            if matches!(root, Root::Key | Root::Op) {
                return Err(ConditionError {
                    position: token.position,
                    kind: ConditionErrorKind::NoMembers(if root == Root::Key {
                        "`key` (a string)"
                    } else {
                        "`op` (a string)"
                    }),
                });
            }
            steps.push(step);
        }
        // `auth.sub` and `auth.roles` come from the verified principal.
        let (root, steps) = match (root, steps.first()) {
            (Root::Auth, Some(Step::Field(name))) if &**name == "sub" => {
                (Root::AuthSub, steps.split_off(1))
            }
            (Root::Auth, Some(Step::Field(name))) if &**name == "roles" => {
                (Root::AuthRoles, steps.split_off(1))
            }
            _ => (root, steps),
        };
        Ok(Expr::Path {
            root,
            steps: steps.into_boxed_slice(),
            position,
        })
    }
}

fn cmp_op(tok: &Tok) -> Option<CmpOp> {
    Some(match tok {
        Tok::Eq => CmpOp::Eq,
        Tok::Ne => CmpOp::Ne,
        Tok::Lt => CmpOp::Lt,
        Tok::Le => CmpOp::Le,
        Tok::Gt => CmpOp::Gt,
        Tok::Ge => CmpOp::Ge,
        Tok::Ident(name) if name == "in" => CmpOp::In,
        _ => return None,
    })
}
