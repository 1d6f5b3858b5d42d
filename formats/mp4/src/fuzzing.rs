//! fuzz bodies (todo)
