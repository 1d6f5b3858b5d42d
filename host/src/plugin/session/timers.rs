//! Timers of sessions and instances (`timer_start`).

use super::*;

/// Whether the timer `handle` still fires (not cancelled); a one-shot timer
/// is forgotten as it fires.
pub(crate) fn timer_fires(inst: &Instance, handle: u64) -> bool {
    let mut t = inst.timers.lock();
    match t.get(&handle) {
        None => false,
        Some(&(sid, _, repeat)) => {
            if !repeat {
                t.remove(&handle);
                drop(t);
                forget_timer(inst, sid, handle);
            }
            true
        }
    }
}

/// Drops `handle` from session `sid`'s list of timers (it fired or was
/// cancelled).
pub(crate) fn forget_timer(inst: &Instance, sid: u64, handle: u64) {
    if sid == 0 {
        return;
    }
    if let Some(s) = inst.sessions.get(&sid) {
        s.st.lock().timers.retain(|h| *h != handle);
    }
}

/// Longest timer delay (`timer_start` refuses more): a year keeps every
/// deadline far from the clock's range.
pub(crate) const MAX_TIMER_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);

/// Starts a timer for `session` (None: the instance). Returns its handle.
pub(crate) fn start_timer(
    inst: &Arc<Instance>,
    session: Option<&Arc<SessionShared>>,
    delay: Duration,
    repeat: bool,
    timer_id: u64,
) -> u64 {
    let handle = inst.next_timer.fetch_add(1, Ordering::Relaxed);
    let delay = delay.max(Duration::from_millis(1));
    let sid = session.map_or(0, |s| s.id);
    let target: Box<dyn Fn() -> bool + Send> = match session {
        Some(s) => {
            let s = Arc::downgrade(s);
            Box::new(move || {
                s.upgrade()
                    .is_some_and(|s| s.send(Ctl::Timer { handle, timer_id }))
            })
        }
        None => {
            let inst = Arc::downgrade(inst);
            Box::new(move || match inst.upgrade() {
                Some(i) => {
                    i.send_instance(InstMsg::Timer { handle, timer_id });
                    true
                }
                None => false,
            })
        }
    };
    // Hold the lock across the spawn so the entry exists before it can fire.
    let mut timers = inst.timers.lock();
    let task = inst.host.rt.spawn(async move {
        let mut next = tokio::time::Instant::now() + delay;
        loop {
            tokio::time::sleep_until(next).await;
            if !target() || !repeat {
                break;
            }
            next += delay;
        }
    });
    timers.insert(handle, (sid, task.abort_handle(), repeat));
    drop(timers);
    // The session keeps its own list, so its end cancels its timers
    // without a walk over every timer of the instance.
    if let Some(s) = session {
        s.st.lock().timers.push(handle);
    }
    handle
}
