"""Notices: a long cell ended, a kernel died, a card is about to be reclaimed, a run finished, the server crashed.

Nothing lost, nothing doubled: a notice is written to disk with an id
before anything is sent, and every sender remembers, per channel and id,
what it tried, so a notice goes out at most once per channel, retried with
backoff across restarts until `expire_after`.

- `events`: whether the member wants a notice, and writing it (the producers' one call).
- `queue`: a directory of notices owed, the log of tries, the tallies.
- `engine`: the delivery pass: dedupe, backoff, expiry, shared by both senders.
- `channels`: apprise, the only module that imports it.
- `sender`: the member's own sender, a small process any of their processes starts.
- `spool`: the sticky directory members leave notices in for the lab's channels.
- `service`: root's service that reads the spool and sends to the lab's channels.
- `member`: the member's `[notify]` table, changed by `labshare notify ...`.
- `status`: what `notify status`, `doctor` and `admin check` show.
"""
