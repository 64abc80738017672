//! Deciding which pushed changes of one document to keep: pure, over one version of the document.
//!
//! In the common case every change is allowed and the decision is one application and one
//! hydration. When something is refused, the first change that turns an allowed state into a
//! refused one is found by bisection over the causally ordered changes (each probe is one
//! application of a prefix), it and everything built on it are refused, and the search goes on with
//! the rest. The work is O(r · n log n) for n changes and r refusals, and r is capped
//! ([`MAX_REFUSALS_CHECKED`]): past that, the rest of the document's changes are refused unchecked
//! and kept. A push of many changes can therefore not keep a core busy for long, and it runs outside
//! the team's lock in any case.

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{Automerge, Change, ChangeHash};

use super::{Result, SyncError, violation};
use crate::docs::{DocError, DocKind, Document};
use crate::rules::{self, Principal, Violation, ViolationCode};

/// Refusals searched for one by one in one document of one push; the rest is refused unchecked.
pub const MAX_REFUSALS_CHECKED: usize = 16;

/// What happened to one pushed document, before it is committed.
#[derive(Debug)]
pub(crate) struct Staged {
    /// The document with the accepted changes applied.
    pub doc: Automerge,
    /// Its typed state (`None`: a new document of which nothing was accepted).
    pub state: Option<Document>,
    pub accepted_new: Vec<Change>,
    pub rejected: Vec<(Change, Violation)>,
}

/// The version a push is decided against.
pub(crate) struct Base<'a> {
    pub who: &'a Principal,
    pub kind: DocKind,
    pub doc_id: &'a str,
    /// The stored document (an empty one when it does not exist).
    pub doc: &'a Automerge,
    /// Its typed state; `None` when the document does not exist yet.
    pub before: Option<&'a Document>,
    /// Whether the document is assigned to the author (owner or territory rep).
    pub assigned: bool,
}

enum Failure {
    /// A permission or history problem: this change is refused, the rest may go on.
    Refused(Violation),
    /// The result is not a valid document: a broken client.
    Invalid(SyncError),
}

impl Failure {
    fn into_violation(self) -> Violation {
        match self {
            Failure::Refused(v) => v,
            Failure::Invalid(e) => violation(ViolationCode::InvalidDocument, &e.to_string()),
        }
    }
}

fn out_of_sync() -> Violation {
    violation(
        ViolationCode::OutOfSync,
        "this edit does not fit the server's version of the document: resync the document and retry",
    )
}

/// Decides which of `changes` to keep on top of `base`.
pub(crate) fn stage(base: &Base<'_>, changes: Vec<Change>) -> Result<Staged> {
    let mut fresh: Vec<Change> = Vec::new();
    let mut fresh_hashes = BTreeSet::new();
    for c in changes {
        if base.doc.get_change_meta_by_hash(&c.hash()).is_none() && fresh_hashes.insert(c.hash()) {
            fresh.push(c);
        }
    }
    let state = base.before.cloned();
    if fresh.is_empty() {
        return Ok(Staged { doc: base.doc.clone(), state, accepted_new: vec![], rejected: vec![] });
    }
    let (ordered, mut rejected) = causal_order(base, fresh);
    let mut refused: HashSet<ChangeHash> = rejected.iter().map(|(c, _)| c.hash()).collect();

    // The common case: everything is allowed. One application, one hydration.
    let mut known_failure = None;
    if rejected.is_empty() {
        match probe(base, base.doc, &ordered) {
            Ok((doc, after)) => {
                return Ok(Staged { doc, state: Some(after), accepted_new: ordered, rejected });
            }
            // Schema errors refuse the whole request: a broken client must not be half-applied.
            Err(Failure::Invalid(e)) => return Err(e),
            Err(refused) => known_failure = Some(refused),
        }
    }

    let mut doc: Option<Automerge> = None; // None: still the base
    let mut state = state;
    let mut accepted_new: Vec<Change> = Vec::new();
    let mut remaining = ordered;
    let mut refusals = 0;
    while !remaining.is_empty() {
        let from = doc.as_ref().unwrap_or(base.doc);
        let mut hi_failure = match known_failure.take().map_or_else(|| probe(base, from, &remaining), Err) {
            Ok((d, s)) => {
                doc = Some(d);
                state = Some(s);
                accepted_new.append(&mut remaining);
                break;
            }
            Err(f) => f,
        };
        if refusals >= MAX_REFUSALS_CHECKED {
            for c in remaining.drain(..) {
                rejected.push((
                    c,
                    violation(
                        ViolationCode::NotChecked,
                        "too many refused edits in one push: kept for review, not applied",
                    ),
                ));
            }
            break;
        }
        // probe(prefix lo) passes (lo = 0 trivially), probe(prefix hi) fails.
        let (mut lo, mut hi) = (0, remaining.len());
        let mut lo_state: Option<(Automerge, Document)> = None;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            let from = lo_state.as_ref().map(|(d, _)| d).or(doc.as_ref()).unwrap_or(base.doc);
            match probe(base, from, &remaining[lo..mid]) {
                Ok(ok) => {
                    lo = mid;
                    lo_state = Some(ok);
                }
                Err(f) => {
                    hi = mid;
                    hi_failure = f;
                }
            }
        }
        if let Some((d, s)) = lo_state {
            doc = Some(d);
            state = Some(s);
        }
        accepted_new.extend(remaining.drain(..lo));
        let bad = remaining.remove(0);
        refused.insert(bad.hash());
        rejected.push((bad, hi_failure.into_violation()));
        refusals += 1;
        let mut keep = Vec::with_capacity(remaining.len());
        for c in remaining.drain(..) {
            if c.deps().iter().any(|d| refused.contains(d)) {
                refused.insert(c.hash());
                rejected.push((
                    c,
                    violation(ViolationCode::DependsOnRejected, "builds on an edit that was refused"),
                ));
            } else {
                keep.push(c);
            }
        }
        remaining = keep;
    }
    Ok(Staged { doc: doc.unwrap_or_else(|| base.doc.clone()), state, accepted_new, rejected })
}

/// Orders the fresh changes so that every change comes after its dependencies among them (ties in
/// the order pushed), and sets aside the ones that build on changes the server does not have.
fn causal_order(base: &Base<'_>, fresh: Vec<Change>) -> (Vec<Change>, Vec<(Change, Violation)>) {
    let index: HashMap<ChangeHash, usize> = fresh.iter().enumerate().map(|(i, c)| (c.hash(), i)).collect();
    let mut waiting = vec![0usize; fresh.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); fresh.len()];
    let mut missing = vec![false; fresh.len()];
    for (i, c) in fresh.iter().enumerate() {
        for d in c.deps() {
            match index.get(d) {
                Some(&j) => {
                    waiting[i] += 1;
                    children[j].push(i);
                }
                None if base.doc.get_change_meta_by_hash(d).is_none() => missing[i] = true,
                None => {}
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..fresh.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(fresh.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &child in &children[i] {
            missing[child] |= missing[i];
            waiting[child] -= 1;
            if waiting[child] == 0 {
                ready.insert(child);
            }
        }
    }
    // What never became ready depends on a cycle of hashes, which real changes cannot form.
    let placed: HashSet<usize> = order.iter().copied().collect();
    let missing_violation = || match base.before {
        Some(_) => out_of_sync(),
        None => super::not_found(),
    };
    let mut slots: Vec<Option<Change>> = fresh.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(order.len());
    let mut rejected = Vec::new();
    let mut refused: HashSet<ChangeHash> = HashSet::new();
    for i in order {
        let Some(c) = slots[i].take() else { continue };
        let refusal = if missing[i] {
            Some(missing_violation())
        } else if super::is_server_actor(c.actor_id()) {
            // Nobody but the server writes as the server, whatever the role.
            Some(violation(ViolationCode::ServerActor, "only the server writes as the server"))
        } else if c.deps().iter().any(|d| refused.contains(d)) {
            Some(violation(ViolationCode::DependsOnRejected, "builds on an edit that was refused"))
        } else {
            None
        };
        match refusal {
            Some(v) => {
                refused.insert(c.hash());
                rejected.push((c, v));
            }
            None => ordered.push(c),
        }
    }
    for (i, slot) in slots.into_iter().enumerate() {
        if let Some(c) = slot
            && !placed.contains(&i)
        {
            rejected.push((c, missing_violation()));
        }
    }
    (ordered, rejected)
}

/// Applies `changes` to a copy of `from` and judges the result against the stored state: the net
/// effect of everything accepted must be allowed.
fn probe(base: &Base<'_>, from: &Automerge, changes: &[Change]) -> Result<(Automerge, Document), Failure> {
    let mut next = from.clone();
    if next.apply_changes(changes.iter().cloned()).is_err()
        || changes.iter().any(|c| next.get_change_meta_by_hash(&c.hash()).is_none())
    {
        return Err(Failure::Refused(out_of_sync()));
    }
    let after = typed(&next, base.kind, base.doc_id).map_err(Failure::Invalid)?;
    rules::check_edit(base.who, base.before, &after, base.assigned).map_err(Failure::Refused)?;
    Ok((next, after))
}

/// The typed, validated document, which must be the kind and id it was pushed as.
pub(crate) fn typed(doc: &Automerge, kind: DocKind, doc_id: &str) -> Result<Document> {
    let invalid = |error| SyncError::InvalidDocument { doc_id: doc_id.into(), error };
    let typed = Document::hydrate(doc).map_err(invalid)?;
    typed.validate().map_err(invalid)?;
    // What the typed form does not read, the rules cannot see: it is refused, whatever its size.
    crate::docs::check_known_keys(doc, &typed).map_err(invalid)?;
    if typed.kind() != kind {
        return Err(SyncError::KindMismatch { doc_id: doc_id.into(), stored: typed.kind(), pushed: kind });
    }
    if typed.id() != doc_id {
        return Err(invalid(DocError::InvalidField {
            field: "id".into(),
            reason: format!("document says {:?} but was pushed as {doc_id:?}", typed.id()),
        }));
    }
    Ok(typed)
}
