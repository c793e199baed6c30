/**
 * A tree-sitter grammar of the journey language, for editors (Neovim, Helix, Zed…). It
 * follows grammar/journey.pest, the single source of the syntax; test/ parses every example
 * of journeys/ and every journey block of docs/language.md with it, so the two cannot drift.
 * It is more lenient than the checker in one way: a file may also hold headers and steps
 * alone (the fragments of the documentation), so a half-written file still highlights.
 */

const PREC = { or: 1, and: 2, not: 3, sum: 1, product: 2 };

module.exports = grammar({
  name: "journey",

  extras: ($) => [/\s/, $.comment],

  word: ($) => $.identifier,

  rules: {
    source_file: ($) => repeat(choice($._definition, $.header, $.step)),

    _definition: ($) => choice($.journey, $.segment, $.policy, $.topic),

    // ---------------------------------------------------------------- lexical

    comment: (_) => token(seq("#", /.*/)),
    identifier: (_) => /[A-Za-z_][A-Za-z0-9_]*/,
    string: (_) =>
      choice(
        token(seq('"""', repeat(choice(/[^"]/, /"[^"]/, /""[^"]/)), '"""')),
        token(seq('"', repeat(choice(/[^"\\\n]/, /\\./)), '"'))
      ),
    number: (_) => /-?\d+(\.\d+)?/,
    percent: (_) => /\d+(\.\d+)?%/,
    duration: (_) => /(\d+(mo|s|m|h|d|w))+/,
    time_of_day: (_) => /\d{1,2}:\d{2}/,
    date: (_) => /\d{4}-\d{2}-\d{2}/,
    timezone: (_) => token(prec(1, /[A-Z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*/)),
    boolean: (_) => choice("true", "false"),
    weekday: (_) => choice("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    list: ($) => seq("[", optional(seq($._literal, repeat(seq(",", $._literal)), optional(","))), "]"),
    _literal: ($) => choice($.string, $.boolean, $.date, $.number, $.list),

    // ---------------------------------------------------------------- journeys

    journey: ($) => seq("journey", field("name", $.identifier), "{", repeat($.header), repeat($.step), "}"),

    header: ($) =>
      choice(
        seq("title", $.string),
        seq("category", $.string),
        seq("label", $.string),
        seq("entry", $._entry),
        seq("reentry", choice("never", "always", seq("after", $.duration))),
        seq("goal", "event", $.string, optional($.where_clause)),
        seq("exit", "event", $.string, optional($.where_clause)),
        seq("policy", choice("none", field("policy", $.identifier))),
        seq("quiet", $.time_of_day, "..", $.time_of_day),
        seq("migrate", "by", "name"),
        "transactional",
        seq("topic", field("topic", $.identifier)),
        seq("holdout", $.percent)
      ),

    _entry: ($) =>
      choice(
        seq("event", $.string, optional($.where_clause)),
        seq("segment", field("segment", $.identifier), "at", $.date, $.time_of_day, optional($.timezone)),
        seq("segment", field("segment", $.identifier), "every", choice("day", $.weekday), $.time_of_day, optional($.timezone)),
        seq("segment", field("segment", $.identifier), "on", "join"),
        "api"
      ),

    where_clause: ($) => prec.right(seq("where", $._condition)),

    // ---------------------------------------------------------------- steps

    block: ($) => seq("{", repeat($.step), "}"),
    step: ($) => seq(optional(seq(field("label", $.identifier), ":")), $._step_body),
    _step_body: ($) =>
      choice($.send, $.wait, $.wait_until, $.wait_for_event, $.check, $.if, $.split, $.experiment, $.set, $.goto, $.end),

    send: ($) => seq("send", $.channel, field("name", $.identifier), "{", repeat($._field), "}"),
    channel: (_) => choice("email", "sms", "push", "webhook"),
    _field: ($) => choice($.text_field, $.link_field, $.header_field, $.data_field, $.method_field, $.timeout_field),
    text_field: ($) =>
      seq(
        field("key", choice("subject", "template", "html", "text", "from", "reply_to", "to", "title", "body", "url")),
        $.string
      ),
    link_field: ($) => seq("link", field("name", $.identifier), $.string),
    header_field: ($) => seq("header", $.string, $.string),
    data_field: ($) => seq("data", "{", repeat(seq($.identifier, $.string)), "}"),
    method_field: ($) => seq("method", choice("GET", "POST", "PUT", "PATCH", "DELETE")),
    timeout_field: ($) => seq("timeout", $.duration),

    wait: ($) => seq("wait", $.duration),
    wait_until: ($) =>
      seq(
        "wait",
        "until",
        choice(seq($.date, $.time_of_day), seq($.weekday, $.time_of_day), $.time_of_day),
        optional($.timezone)
      ),
    wait_for_event: ($) =>
      seq("wait", "for", "event", $.string, optional($.where_clause), "within", $.duration, $.outcomes),

    check: ($) => seq("check", $.verb, $.message_ref, "within", $.duration, $.outcomes),
    outcomes: ($) => seq("{", optional(seq("yes", $.block)), optional(seq("no", $.block)), "}"),

    if: ($) =>
      prec.right(
        seq(
          "if",
          $._condition,
          $.block,
          repeat(seq("else", "if", $._condition, $.block)),
          optional(seq("else", $.block))
        )
      ),

    split: ($) => seq("split", "random", "{", repeat($.split_arm), "}"),
    split_arm: ($) => seq($.percent, field("name", $.identifier), $.block),

    experiment: ($) =>
      seq(
        "experiment",
        field("name", $.identifier),
        "by",
        choice("opened", "clicked", "converted"),
        "within",
        $.duration,
        "{",
        repeat($.experiment_arm),
        "}"
      ),
    experiment_arm: ($) => seq($.percent, choice(seq(field("name", $.identifier), $.block), $.winner)),
    winner: (_) => "winner",

    set: ($) => seq("set", "contact", ".", field("field", $.identifier), "=", $._expr),

    // Computed values: `contact.carts + 1`, `now + 3d`, `entry.total * 2`.
    _expr: ($) => choice($.binary_expr, $.paren_expr, $.now, $.value_ref, $.duration, $._literal),
    binary_expr: ($) =>
      choice(
        prec.left(PREC.sum, seq($._expr, field("operator", choice("+", "-")), $._expr)),
        prec.left(PREC.product, seq($._expr, field("operator", choice("*", "/")), $._expr))
      ),
    paren_expr: ($) => seq("(", $._expr, ")"),
    now: (_) => "now",
    value_ref: ($) => prec.right(seq(choice("contact", "entry", "event"), repeat1(seq(".", $.identifier)))),
    goto: ($) => seq("goto", field("label", $.identifier)),
    end: (_) => "end",

    // ---------------------------------------------------------------- conditions

    _condition: ($) =>
      choice(
        $.and,
        $.or,
        $.not,
        $.group,
        $.in_segment,
        $.in_list,
        $.count_event,
        $.count_engagement,
        $.last_engagement,
        $.event_occurred,
        $.engagement,
        $.boolean,
        $.comparison
      ),
    or: ($) => prec.left(PREC.or, seq($._condition, "or", $._condition)),
    and: ($) => prec.left(PREC.and, seq($._condition, "and", $._condition)),
    not: ($) => prec(PREC.not, seq("not", $._condition)),
    group: ($) => seq("(", $._condition, ")"),
    in_segment: ($) => seq("in", "segment", field("segment", $.identifier)),
    in_list: ($) => seq("in", "list", $.string),

    verb: (_) => choice("received", "opened", "clicked", "bounced", "unsubscribed"),
    _target: ($) =>
      choice(seq("channel", $.channel), seq("journey", field("journey", $.identifier)), seq("label", $.string), $.message_ref),
    message_ref: ($) => prec.right(seq($.identifier, repeat(seq(".", $.identifier)))),
    in_last: ($) => seq("in", "last", $.duration),
    engagement: ($) => prec.right(seq($.verb, $._target, optional($.in_last))),
    last_engagement: ($) => seq("last", $.verb, $._target, $.cmp_op, $.duration, "ago"),
    count_engagement: ($) => prec.right(seq("count", $.verb, $._target, $.cmp_op, $.number, optional($.in_last))),
    event_occurred: ($) => prec.right(seq("event", $.string, optional($.where_clause), optional($.in_last))),
    count_event: ($) =>
      prec.right(seq("count", "event", $.string, optional($.where_clause), $.cmp_op, $.number, optional($.in_last))),

    comparison: ($) =>
      seq(
        $.path,
        choice(
          seq($.cmp_op, choice($._literal, $.value_ref)),
          seq("in", "last", $.duration),
          seq("before", $.time_point),
          seq("after", $.time_point),
          seq("between", $.date, "and", $.date),
          seq("is", "anniversary"),
          seq("in", $.list),
          seq("not", "in", $.list),
          seq("contains", $._literal),
          seq("starts", "with", $._literal)
        )
      ),
    path: ($) => seq(choice($.identifier, "contact", "entry", "event"), repeat(seq(".", $.identifier))),
    time_point: ($) => prec.right(choice($.date, seq($.now, optional(seq(choice("+", "-"), $.duration))))),
    cmp_op: (_) => choice("==", "!=", "<=", ">=", "<", ">"),

    // ---------------------------------------------------------------- segments

    segment: ($) => seq("segment", field("name", $.identifier), "{", optional(seq("title", $.string)), repeat($.rule), "}"),
    rule: ($) =>
      seq(
        // One token: `and rule` ends the rule before it, where `and` alone would go on with
        // its condition (the pest grammar looks ahead for `rule`; an LR parser sees one token).
        choice("rule", alias(token(seq(choice("and", "or", "except"), /[ \t\r\n]+/, "rule")), $.combinator)),
        field("name", $.identifier),
        ":",
        choice($.event_rule, $.engagement_rule, $._condition)
      ),
    event_rule: ($) =>
      prec(1, seq(optional("no"), "event", $.string, optional($.where_clause), optional($.occurrences), optional($.time_frame))),
    engagement_rule: ($) =>
      prec(1, seq($.verb, choice(seq("message", optional($.where_clause)), $._target), optional($.occurrences), optional($.time_frame))),
    occurrences: ($) => seq(choice(seq("at", "least"), seq("at", "most"), "exactly"), $.number, choice("times", "time")),
    time_frame: ($) =>
      choice("anytime", prec(2, seq("in", "last", $.duration)), seq("between", $.date, "and", $.date), seq("within", $.duration, "after", "delivery")),

    // ---------------------------------------------------------------- policies and topics

    policy: ($) => seq("policy", field("name", $.identifier), "{", repeat($._policy_item), "}"),
    _policy_item: ($) =>
      choice(
        seq("title", $.string),
        $.cap,
        seq("scope", choice("global", "journey")),
        seq("when", "capped", choice("delay", "skip"))
      ),
    cap: ($) =>
      seq("max", $.number, choice("emails", "email", "sms", "pushes", "push", "webhooks", "webhook", "messages"), "per", $.duration),

    topic: ($) => seq("topic", field("name", $.identifier), "{", repeat(choice(seq("title", $.string), seq("default", choice("subscribed", "unsubscribed")))), "}"),
  },
});
