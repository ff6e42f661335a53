use super::{Locked, Slots, applied, share};
use chrono::{Duration, Utc};

#[test]
fn a_lone_worker_gets_what_it_wants_within_the_cap() {
    assert_eq!(share(10, 4, 0, 0, 0), 4);
    assert_eq!(share(10, 40, 0, 0, 0), 10);
}

#[test]
fn busy_workers_converge_to_fair_shares_that_never_exceed_the_cap() {
    // Worker A holds all 10; B arrives wanting 50 and gets nothing yet.
    let b = share(10, 50, 10, 50, 1);
    assert_eq!(b, 0);
    // A renews: B wants slots, so A's share drops to its fair half…
    let a = share(10, 50, b, 50, 1);
    assert_eq!(a, 5);
    // …and once A's calls above 5 finish, B gets the rest.
    let b = share(10, 50, a, 50, 1);
    assert_eq!(b, 5);
    assert!(a + b <= 10);
}

#[test]
fn a_small_demand_leaves_the_rest_to_a_big_one() {
    // A wants 2, B wants 50: A takes 2, B gets 8, not a "fair" 5.
    let a = share(10, 2, 0, 50, 1);
    assert_eq!(a, 2);
    assert_eq!(share(10, 50, a, 2, 1), 8);
}

/// The database's clock a minute behind this host's: an admin's clearing, stamped by the
/// database, still drops the cool-down a renewal read a second before it. (Stamped by this
/// host's clock, the cool-down looked a minute newer than the clearing and was kept.)
#[test]
fn a_clearing_drops_what_was_known_before_it_whatever_this_hosts_clock_says() {
    let db = Utc::now() - Duration::seconds(60);
    let slots = Slots::default();
    let read = |throttle, cleared_at, db_now| Locked {
        own_cap: None,
        throttle,
        cleared_at,
        db_now,
    };
    let quota = Some((db + Duration::minutes(10), "quota spent".to_string()));
    applied(&slots, 1, read(quota, None, db), Vec::new());
    let held = |s: &Slots| s.throttle.lock().expect("lock").is_some();
    assert!(held(&slots), "the fleet's cool-down is kept");
    let cleared = db + Duration::seconds(1);
    applied(
        &slots,
        1,
        read(None, Some(cleared), cleared + Duration::seconds(1)),
        Vec::new(),
    );
    assert!(!held(&slots), "kept past the admin's clearing");
}
