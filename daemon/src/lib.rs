//! zend: the zen daemon, as a library so tests can run it in-process.
