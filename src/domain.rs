//! The domain's shared words: the channels a message goes by, the verbs of engagement, the
//! comparison operators and segment combinators, what a capped send does. The language writes
//! them, the compiler checks them, the engine decides with them and the store keeps them, so
//! they sit below all four and import nothing of the crate.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Push,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Received,
    Opened,
    Clicked,
    Bounced,
    Unsubscribed,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Received => "received",
            Verb::Opened => "opened",
            Verb::Clicked => "clicked",
            Verb::Bounced => "bounced",
            Verb::Unsubscribed => "unsubscribed",
        }
    }
    pub fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "received" => Verb::Received,
            "opened" => Verb::Opened,
            "clicked" => Verb::Clicked,
            "bounced" => Verb::Bounced,
            "unsubscribed" => Verb::Unsubscribed,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
    pub fn parse(s: &str) -> Option<CmpOp> {
        Some(match s {
            "==" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combinator {
    And,
    Or,
    Except,
}

impl Combinator {
    pub fn as_str(self) -> &'static str {
        match self {
            Combinator::And => "and",
            Combinator::Or => "or",
            Combinator::Except => "except",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CappedAction {
    Delay,
    Skip,
}
