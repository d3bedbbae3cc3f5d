//! Free trunk space as sorted sets, no I/O: best-fit allocation, split, merge of neighbours, quarantine.
