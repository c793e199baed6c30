; Folds: each definition, message and block.
[
  (journey)
  (segment)
  (policy)
  (topic)
  (send)
  (block)
  (experiment)
  (outcomes)
  (data_field)
] @fold
