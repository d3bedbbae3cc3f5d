//! Reading and writing one slot of a trunk file: header check against the name, content ranges, positioned writes.
