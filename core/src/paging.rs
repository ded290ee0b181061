//! Sorting, index paging and RFC 9865 cursors. (Being written.)
