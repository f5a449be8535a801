//! Section 13: the mock behaves like a model, so other people's software
//! works against it unchanged. One file per part of the section.

mod any_name;
mod counting;
mod embeddings;
mod structured;
mod tools;
