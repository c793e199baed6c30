; Highlights for the journey language (tree-sitter). Keywords are the words of
; grammar/journey.pest; test/ checks that every one of them is listed here.

(comment) @comment
(string) @string
[(number) (percent)] @number
[(duration) (time_of_day) (date)] @number
(boolean) @boolean
(timezone) @constant.builtin
(weekday) @constant
(cmp_op) @operator
["=" ".." "+" "-" "*" "/"] @operator
["{" "}" "(" ")" "[" "]"] @punctuation.bracket
["," "." ":"] @punctuation.delimiter

["journey" "segment" "policy" "topic"] @keyword

[
  "send" "wait" "until" "for" "within" "check" "yes" "no" "if" "else" "split" "random"
  "set" "goto"
] @keyword
(end) @keyword

[
  "title" "category" "label" "entry" "event" "api" "at" "every" "on" "join" "day" "reentry"
  "never" "always" "after" "goal" "exit" "none" "quiet" "migrate" "by" "name"
  "transactional" "where" "contact" "holdout" "experiment" "converted"
] @keyword
(winner) @keyword

["is" "anniversary" "before"] @keyword.operator
(now) @constant.builtin

[
  "subject" "template" "html" "text" "from" "reply_to" "to" "body" "url" "link" "header"
  "data" "method" "timeout" "GET" "POST" "PUT" "PATCH" "DELETE"
] @property

[
  "and" "or" "not" "in" "contains" "starts" "with"
] @keyword.operator

[
  "list" "channel" "last" "count" "ago" "rule" "message" "times" "time" "least" "most"
  "exactly" "anytime" "between" "delivery" "max" "per" "scope" "global" "when" "capped"
  "delay" "skip" "default" "subscribed" "unsubscribed" "emails" "email" "sms" "pushes"
  "push" "webhooks" "webhook" "messages"
] @keyword

(combinator) @keyword
(verb) @function.builtin
(channel) @type.builtin

(journey name: (identifier) @type)
(segment name: (identifier) @type)
(policy name: (identifier) @type)
(topic name: (identifier) @type)
(send name: (identifier) @function)
(link_field name: (identifier) @property)
(message_ref (identifier) @function)
(step label: (identifier) @label)
(goto label: (identifier) @label)
(split_arm name: (identifier) @label)
(experiment name: (identifier) @type)
(experiment_arm name: (identifier) @label)
(rule name: (identifier) @label)
(header policy: (identifier) @type)
(header topic: (identifier) @type)
(header segment: (identifier) @type)
(in_segment segment: (identifier) @type)
(path (identifier) @variable.member)
(value_ref (identifier) @variable.member)
(value_ref ["contact" "entry" "event"] @variable.builtin)
(set field: (identifier) @variable.member)
