// SPDX-License-Identifier: Apache-2.0
//! Clicks and keys in the video window as prompts. Video sinks send
//! navigation events upstream in the coordinates of the stream they show;
//! `videoscale` and `videoconvert` on the way translate them into this
//! element's frame.
//!
//! | input | edit |
//! |---|---|
//! | left click | a new object with a positive point there |
//! | Shift + left click | a negative point for the object under the pointer, or the nearest |
//! | right click | removes the object under the pointer |
//! | Escape | clears all prompted objects |
//!
//! Every other navigation event is not used and goes on upstream.

use gst_video::{NavigationEvent, NavigationModifierType};

use super::{Click, ClickAction, Edit};

/// Left and right mouse buttons, as GStreamer numbers them.
const LEFT_BUTTON: i32 = 1;
const RIGHT_BUTTON: i32 = 3;
/// The key that clears, as video sinks name it.
const CLEAR_KEY: &str = "Escape";

/// What a navigation event means here.
#[derive(Debug, Clone, PartialEq)]
pub enum Navigation {
    /// An edit for the next buffer.
    Edit(Edit),
    /// Meant as a prompt but not usable (the reason, for a warning).
    Ignored(String),
    /// Not a prompt: passed on upstream.
    Unused,
}

/// The meaning of `event` on frames of `frame` size (`None` before caps).
pub fn interpret(event: &gst::EventRef, frame: Option<(u32, u32)>) -> Navigation {
    let Ok(navigation) = NavigationEvent::parse(event) else {
        return Navigation::Unused;
    };
    match navigation {
        NavigationEvent::KeyPress { key, .. } if key == CLEAR_KEY => Navigation::Edit(Edit::Clear),
        NavigationEvent::MouseButtonPress {
            button,
            x,
            y,
            modifier_state,
        } => {
            let action = match button {
                LEFT_BUTTON if modifier_state.contains(NavigationModifierType::SHIFT_MASK) => {
                    ClickAction::Correct
                }
                LEFT_BUTTON => ClickAction::Add,
                RIGHT_BUTTON => ClickAction::Remove,
                _ => return Navigation::Unused,
            };
            let Some((width, height)) = frame else {
                return Navigation::Ignored(format!(
                    "Click at ({x}, {y}) before the caps were set: there is no frame to point at yet"
                ));
            };
            let inside = x.is_finite()
                && y.is_finite()
                && (0.0..f64::from(width)).contains(&x)
                && (0.0..f64::from(height)).contains(&y);
            if !inside {
                return Navigation::Ignored(format!(
                    "Click at ({x}, {y}) is outside the {width}x{height} frame"
                ));
            }
            Navigation::Edit(Edit::Click(Click {
                action,
                x: x as f32,
                y: y as f32,
            }))
        }
        _ => Navigation::Unused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(button: i32, x: f64, y: f64, modifier: NavigationModifierType) -> gst::Event {
        NavigationEvent::MouseButtonPress {
            button,
            x,
            y,
            modifier_state: modifier,
        }
        .build()
    }

    #[test]
    fn clicks_and_keys_become_edits() {
        gst::init().unwrap();
        let frame = Some((320, 240));
        let none = NavigationModifierType::empty();
        let click = |action, x, y| Navigation::Edit(Edit::Click(Click { action, x, y }));
        assert_eq!(
            interpret(&press(1, 10.0, 20.0, none), frame),
            click(ClickAction::Add, 10.0, 20.0)
        );
        assert_eq!(
            interpret(
                &press(1, 10.0, 20.0, NavigationModifierType::SHIFT_MASK),
                frame
            ),
            click(ClickAction::Correct, 10.0, 20.0)
        );
        assert_eq!(
            interpret(&press(3, 1.0, 2.0, none), frame),
            click(ClickAction::Remove, 1.0, 2.0)
        );
        let escape = NavigationEvent::KeyPress {
            key: "Escape".into(),
            modifier_state: none,
        }
        .build();
        assert_eq!(interpret(&escape, frame), Navigation::Edit(Edit::Clear));
    }

    #[test]
    fn other_events_are_unused_and_bad_clicks_ignored() {
        gst::init().unwrap();
        let none = NavigationModifierType::empty();
        let frame = Some((320, 240));
        let moved = NavigationEvent::MouseMove {
            x: 1.0,
            y: 1.0,
            modifier_state: none,
        }
        .build();
        assert_eq!(interpret(&moved, frame), Navigation::Unused);
        assert_eq!(
            interpret(&press(2, 1.0, 1.0, none), frame),
            Navigation::Unused
        );
        let key = NavigationEvent::KeyPress {
            key: "a".into(),
            modifier_state: none,
        }
        .build();
        assert_eq!(interpret(&key, frame), Navigation::Unused);
        assert_eq!(
            interpret(&gst::event::Eos::new(), frame),
            Navigation::Unused
        );
        for (x, y) in [(320.0, 5.0), (-1.0, 5.0), (5.0, f64::NAN), (1e300, 1e300)] {
            let Navigation::Ignored(reason) = interpret(&press(1, x, y, none), frame) else {
                panic!("({x}, {y}) was not ignored");
            };
            assert!(reason.contains("outside the 320x240 frame"), "{reason}");
        }
        let Navigation::Ignored(reason) = interpret(&press(1, 5.0, 5.0, none), None) else {
            panic!("a click before caps was not ignored");
        };
        assert!(reason.contains("before the caps"), "{reason}");
    }
}
