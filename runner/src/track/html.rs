//! `track.html`: the tracking view as one static page (being written).

use super::Track;

/// The page for `track`.
pub fn render(track: &Track) -> String {
    let _ = track;
    String::new()
}
