//! Prometheus 2.42's type checks after a successful parse (`checkAST` in parse.go), in its
//! order, so the first error found is the one Prometheus reports.

use super::ast::Node;
use super::goquote::quote;
use super::lexer::Aggr;
use super::ParseError;

/// The type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Scalar,
    Vector,
    Matrix,
    String,
}

impl Type {
    /// Go's `DocumentedType`.
    fn documented(self) -> &'static str {
        match self {
            Type::Scalar => "scalar",
            Type::Vector => "instant vector",
            Type::Matrix => "range vector",
            Type::String => "string",
        }
    }

    /// Go's `ValueType` string.
    fn raw(self) -> &'static str {
        match self {
            Type::Scalar => "scalar",
            Type::Vector => "vector",
            Type::Matrix => "matrix",
            Type::String => "string",
        }
    }
}

/// The type an expression has without checking it.
pub fn type_of(node: &Node) -> Type {
    match node {
        Node::Number { .. } => Type::Scalar,
        Node::Str { .. } => Type::String,
        Node::Vector { .. } | Node::Aggregate { .. } => Type::Vector,
        Node::Matrix { .. } | Node::Subquery { .. } => Type::Matrix,
        Node::Call { func, .. } => func.returns,
        Node::Binary { lhs, rhs, .. } => {
            if type_of(lhs) == Type::Scalar && type_of(rhs) == Type::Scalar {
                Type::Scalar
            } else {
                Type::Vector
            }
        }
        Node::Paren { expr, .. } | Node::Unary { expr, .. } => type_of(expr),
    }
}

fn err(pos: usize, message: String) -> Result<Type, ParseError> {
    Err(ParseError { pos, message })
}

fn expect(node: &Node, want: Type, context: &str) -> Result<(), ParseError> {
    let got = check(node)?;
    if got != want {
        return Err(ParseError {
            pos: node.pos(),
            message: format!(
                "expected type {} in {context}, got {}",
                want.documented(),
                got.documented()
            ),
        });
    }
    Ok(())
}

fn is_scalar_or_vector(t: Type) -> bool {
    matches!(t, Type::Scalar | Type::Vector)
}

/// Checks `node` like Prometheus and returns its type, or the first error.
pub fn check(node: &Node) -> Result<Type, ParseError> {
    match node {
        Node::Number { .. } | Node::Str { .. } => Ok(type_of(node)),
        Node::Vector {
            pos,
            name,
            matchers,
            ..
        } => {
            if let Some(name) = name {
                if let Some(m) = matchers.iter().find(|m| m.name == "__name__") {
                    return err(
                        *pos,
                        format!(
                            "metric name must not be set twice: {} or {}",
                            quote(name),
                            quote(&m.value)
                        ),
                    );
                }
            } else if matchers.iter().all(|m| m.matches_empty()) {
                return err(
                    *pos,
                    "vector selector must contain at least one non-empty matcher".into(),
                );
            }
            Ok(Type::Vector)
        }
        Node::Matrix { vector, .. } => check(vector).map(|_| Type::Matrix),
        Node::Subquery { pos, expr, .. } => {
            let t = check(expr)?;
            if t != Type::Vector {
                return err(
                    *pos,
                    format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        t.raw()
                    ),
                );
            }
            Ok(Type::Matrix)
        }
        Node::Paren { expr, .. } => check(expr),
        Node::Unary { pos, expr } => {
            let t = check(expr)?;
            if !is_scalar_or_vector(t) {
                return err(
                    *pos,
                    format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                        quote(t.documented())
                    ),
                );
            }
            Ok(t)
        }
        Node::Aggregate {
            op, param, expr, ..
        } => {
            expect(expr, Type::Vector, "aggregation expression")?;
            if let Some(param) = param {
                match op {
                    Aggr::Topk | Aggr::Bottomk | Aggr::Quantile => {
                        expect(param, Type::Scalar, "aggregation parameter")?
                    }
                    Aggr::CountValues => expect(param, Type::String, "aggregation parameter")?,
                    _ => {}
                }
            }
            Ok(Type::Vector)
        }
        Node::Call { pos, func, args } => check_call(*pos, func, args),
        Node::Binary { .. } => check_binary(node),
    }
}

fn check_call(
    pos: usize,
    func: &super::functions::Function,
    args: &[Node],
) -> Result<Type, ParseError> {
    let (want, got, name) = (func.args.len(), args.len(), quote(func.name));
    if func.variadic == 0 {
        if want != got {
            return err(
                pos,
                format!("expected {want} argument(s) in call to {name}, got {got}"),
            );
        }
    } else {
        let min = want.saturating_sub(1);
        if min > got {
            return err(
                pos,
                format!("expected at least {min} argument(s) in call to {name}, got {got}"),
            );
        }
        let max = min as i64 + func.variadic as i64;
        if func.variadic > 0 && max < got as i64 {
            return err(
                pos,
                format!("expected at most {max} argument(s) in call to {name}, got {got}"),
            );
        }
    }
    let context = format!("call to function {name}");
    for (i, arg) in args.iter().enumerate() {
        let t = match func.args.get(i) {
            Some(t) => *t,
            None if func.variadic == 0 => break,
            None => match func.args.last() {
                Some(t) => *t,
                None => break,
            },
        };
        expect(arg, t, &context)?;
    }
    Ok(func.returns)
}

fn check_binary(node: &Node) -> Result<Type, ParseError> {
    let Node::Binary {
        op,
        op_pos,
        bool,
        matching,
        lhs,
        rhs,
    } = node
    else {
        return Ok(type_of(node));
    };
    let (lt, rt) = (check(lhs)?, check(rhs)?);
    if *bool && !op.is_comparison() {
        return err(
            *op_pos,
            "bool modifier can only be used on comparison operators".into(),
        );
    }
    if op.is_comparison() && !*bool && type_of(lhs) == Type::Scalar && type_of(rhs) == Type::Scalar
    {
        return err(
            *op_pos,
            "comparisons between scalars must use BOOL modifier".into(),
        );
    }
    if matching.on {
        if let Some(l) = matching
            .labels
            .iter()
            .find(|l| matching.include.contains(l))
        {
            return err(
                *op_pos,
                format!(
                    "label {} must not occur in ON and GROUP clause at once",
                    quote(l)
                ),
            );
        }
    }
    if !is_scalar_or_vector(lt) {
        return err(
            lhs.pos(),
            "binary expression must contain only scalar and instant vector types".into(),
        );
    }
    if !is_scalar_or_vector(rt) {
        return err(
            rhs.pos(),
            "binary expression must contain only scalar and instant vector types".into(),
        );
    }
    let start = lhs.pos();
    if lt != Type::Vector || rt != Type::Vector {
        if !matching.labels.is_empty() {
            return err(
                start,
                "vector matching only allowed between instant vectors".into(),
            );
        }
    } else if op.is_set() && matching.group {
        return err(
            start,
            format!("no grouping allowed for {} operation", quote(op.name())),
        );
    }
    if (lt == Type::Scalar || rt == Type::Scalar) && op.is_set() {
        return err(
            start,
            format!(
                "set operator {} not allowed in binary scalar expression",
                quote(op.name())
            ),
        );
    }
    Ok(type_of(node))
}
