//! `track.md` (being written).

use super::Track;

pub fn render(track: &Track) -> String {
    let _ = track;
    String::new()
}
