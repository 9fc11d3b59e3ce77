//! Which pusher consumes which partner's queue.
//!
//! Several pushers run side by side. Every partner has one RabbitMQ queue declared with
//! single-active-consumer (SAC): the broker lets exactly one subscribed consumer receive from it,
//! which keeps a partner's changes in order. SAC alone does not spread the work: RabbitMQ 3.10
//! never rebalances, so the first pusher to subscribe stays the active consumer of that queue for
//! as long as it lives, and a pusher that started first would end up owning every partner while
//! the others sit idle. So the pushers agree among themselves: each one runs [`assign`] on its
//! view of the live pushers (from presence heartbeats) and subscribes only to the partners
//! assigned to it.
//!
//! The two mechanisms split the work. SAC keeps *safety*: while views briefly disagree (a
//! heartbeat is late, a pusher just started) two pushers may both subscribe to a queue, and the
//! broker still delivers to only one of them. This module keeps *fairness*: once the views agree,
//! every pusher holds its share. It also keeps *stability*: a change of owner is a hand-over (one
//! pusher cancels, the next becomes active), so when a pusher joins or leaves, as few partners as
//! possible should change owner.
//!
//! # The computation
//!
//! [`assign`] is pure and deterministic. The same partners and pushers, in any order and with
//! duplicates, give the same map in every process on every platform:
//!
//! 1. Partners are deduplicated and sorted by name. Pushers are deduplicated by name (a name given
//!    twice serves the union of its lists). Only partners in the `partners` list count.
//! 2. A partner that no pusher serves is left out. The rest are the *served* partners, `P`. The
//!    pushers that serve at least one of them are the *active* pushers, `N`.
//! 3. Every pusher may hold `base = floor(P / N)` partners, and the first `P mod N` pushers to
//!    reach `base` may take one more. No pusher then holds more than `ceil(P / N)`. When every
//!    pusher serves every partner, each ends up with exactly `floor(P / N)` or `ceil(P / N)`. A
//!    plain `ceil(P / N)` cap is not enough: with 4 partners and 3 pushers it allows 2, 2 and 0.
//! 4. Partners are taken in name order. Each one ranks the pushers that serve it by rendezvous
//!    (highest random weight) hashing: highest [`weight`] first, and on equal weights the smaller
//!    name first. It goes to the first pusher in that ranking that still has room.
//! 5. When `serves` lists differ, no pusher may have room (its only servers are full). Then the
//!    partner goes to the serving pusher holding the fewest partners so far, and among those the
//!    one ranked first in step 4. A partner is never given to a pusher that does not serve it.
//!
//! Rendezvous hashing gives stability: a partner's ranking of the pushers depends only on the
//! (partner, pusher) pairs, so a pusher that joins or leaves does not reorder the others. Without
//! caps, only the partners the leaving pusher held would move. The caps cost a few more moves,
//! because partners that had to go to a lower-ranked pusher may get their first choice back. The
//! tests check that bound.
//!
//! The weight is a fixed hash, the same on every platform and Rust version: FNV-1a 64 over the
//! partner's bytes, a `0xFF` separator (it cannot occur in UTF-8, so `("ab", "c")` and `("a",
//! "bc")` hash differently) and the pusher's bytes, then the MurmurHash3 `fmix64` finalizer. Plain
//! FNV-1a mixes its last bytes poorly into the high bits, and pusher names often differ only in
//! the last character. Do not replace this with std's `DefaultHasher` or `RandomState`: their
//! output is not guaranteed to be the same across processes or Rust releases. Changing the hash
//! makes pushers on different versions disagree until all of them are upgraded.

use std::collections::{BTreeMap, BTreeSet};

/// A live pusher as seen through presence heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PusherView<'a> {
    /// The pusher's unique name.
    pub name: &'a str,
    /// The partners this pusher is configured for.
    pub serves: Vec<&'a str>,
}

/// Which pusher should consume each partner. Maps partner name to pusher name.
///
/// A partner that no pusher in `pushers` serves is absent from the map. The order of both inputs
/// and any duplicates in them do not matter. See the [module docs](self) for the rules.
pub fn assign<'a>(partners: &[&'a str], pushers: &[PusherView<'a>]) -> BTreeMap<&'a str, &'a str> {
    let partners: BTreeSet<&'a str> = partners.iter().copied().collect();

    // Each pusher name maps to the partners it serves, keeping only partners in `partners`.
    // A name that appears twice serves the union.
    let mut serving: BTreeMap<&'a str, BTreeSet<&'a str>> = BTreeMap::new();
    for pusher in pushers {
        serving.entry(pusher.name).or_default().extend(
            pusher
                .serves
                .iter()
                .copied()
                .filter(|partner| partners.contains(partner)),
        );
    }

    // The pushers serving each served partner, ranked by weight (highest first, then by name).
    // Partners are in name order because this is a BTreeMap.
    let mut candidates: BTreeMap<&'a str, Vec<(u64, &'a str)>> = BTreeMap::new();
    for (&pusher, served) in &serving {
        for &partner in served {
            candidates
                .entry(partner)
                .or_default()
                .push((weight(partner, pusher), pusher));
        }
    }
    for ranked in candidates.values_mut() {
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    }

    let served_partners = candidates.len();
    let active_pushers = serving.values().filter(|served| !served.is_empty()).count();
    let mut assignment = BTreeMap::new();
    if served_partners == 0 || active_pushers == 0 {
        return assignment;
    }
    let base = served_partners / active_pushers;
    let extra_slots = served_partners % active_pushers;

    let mut load: BTreeMap<&'a str, usize> = BTreeMap::new();
    // Pushers holding more than `base` partners.
    let mut above_base = 0usize;
    for (&partner, ranked) in &candidates {
        let load_of = |pusher: &str| load.get(pusher).copied().unwrap_or(0);
        let has_room = |pusher: &str| {
            let held = load_of(pusher);
            held < base || (held == base && above_base < extra_slots)
        };
        // `min_by_key` keeps the first of equal minimums, so the highest-ranked one.
        let chosen = ranked
            .iter()
            .find(|(_, pusher)| has_room(pusher))
            .or_else(|| ranked.iter().min_by_key(|(_, pusher)| load_of(pusher)));
        let Some(&(_, pusher)) = chosen else {
            continue;
        };
        let held = load.entry(pusher).or_insert(0);
        if *held == base {
            above_base += 1;
        }
        *held += 1;
        assignment.insert(partner, pusher);
    }
    assignment
}

/// The rendezvous weight of `pusher` for `partner`: `fmix64(fnv1a64(partner ‖ 0xFF ‖ pusher))`.
///
/// Fixed forever: every pusher must compute the same value. See the module docs.
pub fn weight(partner: &str, pusher: &str) -> u64 {
    const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

    let mut hash = FNV_OFFSET_BASIS;
    let bytes = partner
        .bytes()
        .chain(std::iter::once(0xFF))
        .chain(pusher.bytes());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    fmix64(hash)
}

/// The MurmurHash3 64-bit finalizer: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(prefix: &str, count: usize) -> Vec<String> {
        (1..=count).map(|i| format!("{prefix}-{i:02}")).collect()
    }

    fn refs(owned: &[String]) -> Vec<&str> {
        owned.iter().map(String::as_str).collect()
    }

    /// Pushers that each serve every partner.
    fn serving_all<'a>(pushers: &[&'a str], partners: &[&'a str]) -> Vec<PusherView<'a>> {
        pushers
            .iter()
            .map(|&name| PusherView {
                name,
                serves: partners.to_vec(),
            })
            .collect()
    }

    fn loads<'a>(assignment: &BTreeMap<&'a str, &'a str>) -> BTreeMap<&'a str, usize> {
        let mut loads = BTreeMap::new();
        for &pusher in assignment.values() {
            *loads.entry(pusher).or_insert(0) += 1;
        }
        loads
    }

    fn moved(before: &BTreeMap<&str, &str>, after: &BTreeMap<&str, &str>) -> usize {
        before
            .iter()
            .filter(|(partner, owner)| after.get(*partner) != Some(*owner))
            .count()
    }

    #[test]
    fn weight_is_a_fixed_platform_independent_hash() {
        // Pinned values: if these change, pushers of different versions disagree.
        let pinned = [
            weight("partner-a", "pusher-1"),
            weight("partner-a", "pusher-2"),
            weight("", ""),
        ];
        assert_eq!(pinned, PINNED_WEIGHTS);
        // The separator keeps the boundary between partner and pusher.
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
    }

    const PINNED_WEIGHTS: [u64; 3] = [
        0x2220_ad5e_511e_8c4d,
        0xbab0_b063_3c16_f7ce,
        0x1bbd_5c81_3c69_a8d7,
    ];

    #[test]
    fn balanced_when_every_pusher_serves_every_partner() {
        for partner_count in 1..=12 {
            for pusher_count in 1..=5 {
                let partners = names("partner", partner_count);
                let pushers = names("pusher", pusher_count);
                let (partners, pushers) = (refs(&partners), refs(&pushers));
                let assignment = assign(&partners, &serving_all(&pushers, &partners));

                assert_eq!(assignment.len(), partner_count, "every partner is assigned");
                let loads = loads(&assignment);
                let floor = partner_count / pusher_count;
                let ceil = partner_count.div_ceil(pusher_count);
                for pusher in &pushers {
                    let held = loads.get(pusher).copied().unwrap_or(0);
                    assert!(
                        (floor..=ceil).contains(&held),
                        "{partner_count} partners over {pusher_count} pushers: \
                         {pusher} holds {held}, expected {floor}..={ceil}: {assignment:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn order_and_duplicates_of_inputs_do_not_matter() {
        let partners = names("partner", 11);
        let pushers = names("pusher", 4);
        let (partners, pushers) = (refs(&partners), refs(&pushers));
        // Heterogeneous on purpose, so the fallback path is covered too.
        let views: Vec<PusherView> = pushers
            .iter()
            .enumerate()
            .map(|(i, &name)| PusherView {
                name,
                serves: partners.iter().copied().skip(i).step_by(i + 1).collect(),
            })
            .collect();
        let expected = assign(&partners, &views);

        let mut partners_shuffled = partners.clone();
        partners_shuffled.reverse();
        partners_shuffled.push(partners[3]);
        let mut views_shuffled = views.clone();
        views_shuffled.reverse();
        for view in &mut views_shuffled {
            view.serves.reverse();
        }
        // The same pusher seen twice, its list split in two.
        let (first_half, second_half) = views[0].serves.split_at(3);
        views_shuffled[3].serves = second_half.to_vec();
        views_shuffled.push(PusherView {
            name: views[0].name,
            serves: first_half.to_vec(),
        });
        assert_eq!(assign(&partners_shuffled, &views_shuffled), expected);

        for rotation in 0..views.len() {
            let mut rotated = views.clone();
            rotated.rotate_left(rotation);
            assert_eq!(assign(&partners, &rotated), expected);
        }
    }

    #[test]
    fn only_a_serving_pusher_gets_a_partner() {
        let views = [
            PusherView {
                name: "pusher-1",
                serves: vec!["a", "b", "c"],
            },
            PusherView {
                name: "pusher-2",
                serves: vec!["c", "d"],
            },
            PusherView {
                name: "pusher-3",
                serves: vec!["not-a-partner"],
            },
        ];
        let partners = ["a", "b", "c", "d", "e"];
        let assignment = assign(&partners, &views);

        assert_eq!(assignment.get("e"), None, "no pusher serves e");
        assert_eq!(assignment.len(), 4);
        for (partner, pusher) in &assignment {
            let view = views.iter().find(|v| v.name == *pusher);
            assert!(
                view.is_some_and(|v| v.serves.contains(partner)),
                "{pusher} does not serve {partner}"
            );
        }
        assert_eq!(assignment["a"], "pusher-1");
        assert_eq!(assignment["d"], "pusher-2");
    }

    #[test]
    fn partners_with_a_single_server_go_to_it_even_above_its_share() {
        // pusher-1 is the only server of six partners; pusher-2 serves one more. The fair share
        // is 3.5, but pusher-1 must take all six.
        let only_one = ["a", "b", "c", "d", "e", "f"];
        let views = [
            PusherView {
                name: "pusher-1",
                serves: only_one.to_vec(),
            },
            PusherView {
                name: "pusher-2",
                serves: vec!["g"],
            },
        ];
        let mut partners = only_one.to_vec();
        partners.push("g");
        let loads = loads(&assign(&partners, &views));
        assert_eq!(loads.get("pusher-1"), Some(&6));
        assert_eq!(loads.get("pusher-2"), Some(&1));
    }

    #[test]
    fn when_every_server_is_full_the_least_loaded_one_takes_the_partner() {
        // 7 partners over 3 pushers: a share of 2, and one pusher may hold 3. pusher-3 serves
        // only z, so pusher-1 and pusher-2 have 5 places for a1..a6. The last of those finds
        // both full (3 and 2) and must go to the one holding 2, not to its highest-weight one.
        let shared = ["a1", "a2", "a3", "a4", "a5", "a6"];
        let views = [
            PusherView {
                name: "pusher-1",
                serves: shared.to_vec(),
            },
            PusherView {
                name: "pusher-2",
                serves: shared.to_vec(),
            },
            PusherView {
                name: "pusher-3",
                serves: vec!["z"],
            },
        ];
        let mut partners = shared.to_vec();
        partners.push("z");
        let assignment = assign(&partners, &views);
        assert_eq!(assignment.len(), 7);
        assert_eq!(assignment["z"], "pusher-3");
        let loads = loads(&assignment);
        assert_eq!(loads.get("pusher-1"), Some(&3), "{assignment:?}");
        assert_eq!(loads.get("pusher-2"), Some(&3), "{assignment:?}");
    }

    #[test]
    fn when_one_of_three_pushers_leaves_few_partners_beyond_its_own_move() {
        let partners = names("partner", 30);
        let pushers = names("pusher", 3);
        let (partners, pushers) = (refs(&partners), refs(&pushers));
        let before = assign(&partners, &serving_all(&pushers, &partners));

        for leaving in &pushers {
            let remaining: Vec<&str> = pushers.iter().copied().filter(|p| p != leaving).collect();
            let after = assign(&partners, &serving_all(&remaining, &partners));
            assert_eq!(after.len(), 30);
            assert!(after.values().all(|owner| owner != leaving));

            let held = before.values().filter(|owner| *owner == leaving).count();
            let moved = moved(&before, &after);
            assert!(
                moved <= held + 3,
                "{leaving} held {held}, but {moved} partners moved"
            );
        }
    }

    #[test]
    fn when_a_pusher_joins_it_takes_its_share_and_few_others_move() {
        let partners = names("partner", 30);
        let pushers = names("pusher", 4);
        let (partners, pushers) = (refs(&partners), refs(&pushers));
        let before = assign(&partners, &serving_all(&pushers[..3], &partners));
        let after = assign(&partners, &serving_all(&pushers, &partners));

        let taken = after.values().filter(|owner| **owner == pushers[3]).count();
        assert!((7..=8).contains(&taken));
        let moved = moved(&before, &after);
        assert!(
            moved <= taken + 3,
            "the new pusher took {taken}, {moved} moved"
        );
    }

    #[test]
    fn empty_inputs_give_an_empty_assignment() {
        let partners = ["a", "b"];
        let views = serving_all(&["pusher-1"], &partners);
        assert!(assign(&[], &[]).is_empty());
        assert!(assign(&partners, &[]).is_empty());
        assert!(assign(&[], &views).is_empty());
        let serves_nothing = [PusherView {
            name: "pusher-1",
            serves: vec![],
        }];
        assert!(assign(&partners, &serves_nothing).is_empty());
    }
}
