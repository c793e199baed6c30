; Folds: each definition, message and block.
[
  (journey)
  (segment)
  (policy)
  (topic)
  (send)
  (block)
  (outcomes)
  (data_field)
] @fold
