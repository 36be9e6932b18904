//! Generated audio for inbound calls (pure): ringback heard while a group rings, and the
//! voicemail beep. Made once at engine start, 8 kHz like every prompt.

use crate::media::player::Prompt;
use std::f32::consts::TAU;

const RATE: f32 = 8_000.0;

fn tone(out: &mut Vec<i16>, freqs: &[f32], secs: f32, amplitude: f32) {
    let n = (secs * RATE) as usize;
    for i in 0..n {
        let t = i as f32 / RATE;
        let v: f32 = freqs.iter().map(|f| (TAU * f * t).sin()).sum::<f32>() / freqs.len() as f32;
        out.push((v * amplitude) as i16);
    }
}

fn silence(out: &mut Vec<i16>, secs: f32) {
    out.resize(out.len() + (secs * RATE) as usize, 0);
}

/// North American ringback (ITU-T E.180): 440 + 480 Hz, 2 s on, 4 s off; played in a loop.
pub fn ringback() -> Prompt {
    let mut s = Vec::with_capacity(6 * RATE as usize);
    tone(&mut s, &[440.0, 480.0], 2.0, 6_000.0);
    silence(&mut s, 4.0);
    Prompt {
        name: "ringback".into(),
        samples: s.into(),
    }
}

/// The voicemail beep: 1 kHz for 0.4 s after 0.2 s of silence.
pub fn beep_samples() -> Vec<i16> {
    let mut s = Vec::new();
    silence(&mut s, 0.2);
    tone(&mut s, &[1_000.0], 0.4, 8_000.0);
    s
}

/// A greeting followed by the beep, as one prompt (the beep alone without a greeting).
pub fn greeting_with_beep(greeting: Option<&Prompt>) -> Prompt {
    let mut s: Vec<i16> = greeting.map(|g| g.samples.to_vec()).unwrap_or_default();
    s.extend(beep_samples());
    Prompt {
        name: greeting.map_or_else(|| "beep".to_string(), |g| format!("{}+beep", g.name)),
        samples: s.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(ringback().samples.len(), 48_000);
        let g = Prompt {
            name: "hello".into(),
            samples: vec![1i16; 800].into(),
        };
        let p = greeting_with_beep(Some(&g));
        assert_eq!(p.samples.len(), 800 + 1_600 + 3_200);
        assert_eq!(p.name, "hello+beep");
        assert!(p.samples[800 + 1_600..].iter().any(|s| s.abs() > 7_000));
    }
}
