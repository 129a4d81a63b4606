//! The chunk index: where every chunk is, built from the pack trailers (there is no
//! index file to keep in step with the packs).

use std::collections::HashMap;

use indexmap::IndexMap;

use homelab_core::Result;

use super::Repo;
use crate::crypto::Id;

/// Where one chunk is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub pack: u32,
    pub offset: u64,
    pub length: u32,
    pub size: u32,
}

/// The chunk index: where every chunk is, loaded from the pack trailers.
#[derive(Debug, Default)]
pub struct Index {
    /// Pack ids by number; a pack being written has an all-zero placeholder.
    pub packs: Vec<Id>,
    pub pack_sizes: Vec<u64>,
    /// One entry per chunk, the largest part of create's memory. An IndexMap keeps
    /// the entries in a vector and only their positions in its hash table, so
    /// growing it rehashes 8-byte positions; a HashMap of 56-byte entries held its
    /// old and its new table at once while it grew.
    map: IndexMap<Id, Loc>,
    /// Further copies of chunks stored more than once (after an interrupted run).
    dups: HashMap<Id, Vec<Loc>>,
    /// Packs whose trailer could not be read: (id, problem).
    pub bad_packs: Vec<(Id, String)>,
}

impl Index {
    pub fn load(repo: &Repo) -> Result<Index> {
        let mut index = Index::default();
        for (id, size) in repo.list_packs()? {
            match repo.read_trailer(&id) {
                Ok(entries) => {
                    let n = index.add_pack(id, size);
                    for e in entries {
                        index.insert(
                            e.0,
                            Loc {
                                pack: n,
                                offset: e.1,
                                length: e.2,
                                size: e.3,
                            },
                        );
                    }
                }
                Err(problem) => index.bad_packs.push((id, problem)),
            }
        }
        Ok(index)
    }

    pub fn add_pack(&mut self, id: Id, size: u64) -> u32 {
        self.packs.push(id);
        self.pack_sizes.push(size);
        (self.packs.len() - 1) as u32
    }

    pub fn insert(&mut self, id: Id, loc: Loc) {
        match self.map.get(&id) {
            None => {
                self.map.insert(id, loc);
            }
            Some(l) if *l == loc => {}
            Some(_) => self.dups.entry(id).or_default().push(loc),
        }
    }

    pub fn get(&self, id: &Id) -> Option<Loc> {
        self.map.get(id).copied()
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.map.contains_key(id)
    }

    /// Every location of a chunk, the canonical one first.
    pub fn all(&self, id: &Id) -> Vec<Loc> {
        let mut v: Vec<Loc> = self.map.get(id).copied().into_iter().collect();
        if let Some(d) = self.dups.get(id) {
            v.extend_from_slice(d);
        }
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// A chunk's position in the index (0..len), for a [`ChunkSet`].
    pub fn position(&self, id: &Id) -> Option<usize> {
        self.map.get_index_of(id)
    }

    /// Every chunk with its canonical location, in index position order.
    pub fn canonical(&self) -> impl Iterator<Item = (&Id, &Loc)> {
        self.map.iter()
    }

    /// The further copies of chunks stored more than once.
    pub fn duplicates(&self) -> impl Iterator<Item = (&Id, &Loc)> {
        self.dups
            .iter()
            .flat_map(|(id, locs)| locs.iter().map(move |l| (id, l)))
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A set of the index's chunks, one bit each by [`Index::position`]: an eighth of a
/// byte per chunk where a set of ids takes about fifty.
#[derive(Debug, Clone, Default)]
pub struct ChunkSet {
    bits: Vec<u64>,
}

impl ChunkSet {
    pub fn new(len: usize) -> ChunkSet {
        ChunkSet {
            bits: vec![0; len.div_ceil(64)],
        }
    }

    pub fn insert(&mut self, pos: usize) {
        if let Some(w) = self.bits.get_mut(pos / 64) {
            *w |= 1 << (pos % 64);
        }
    }

    pub fn contains(&self, pos: usize) -> bool {
        self.bits
            .get(pos / 64)
            .is_some_and(|w| w & (1 << (pos % 64)) != 0)
    }

    /// Bytes the set takes.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_set_holds_what_was_inserted_and_nothing_else() {
        let mut s = ChunkSet::new(130);
        for p in [0, 63, 64, 129] {
            s.insert(p);
        }
        let held: Vec<usize> = (0..200).filter(|p| s.contains(*p)).collect();
        assert_eq!(held, vec![0, 63, 64, 129]);
        assert_eq!(s.bytes(), 24);
    }
}
