//! The date and time fields the link fills in (UTC, as card networks use), and RRNs.

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant broken into the parts ISO 8583 fields use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    year: u32,
    month: u32,
    day: u32,
    day_of_year: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Stamp {
    pub fn now() -> Stamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Stamp::from_unix(secs)
    }

    pub fn from_unix(secs: u64) -> Stamp {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        const BEFORE_MONTH: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let day_of_year = BEFORE_MONTH[month as usize - 1] + day + u32::from(leap && month > 2);
        Stamp {
            year,
            month,
            day,
            day_of_year,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// Field 7, transmission date and time: `MMDDhhmmss`.
    pub fn transmission_time(&self) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Field 12, local transaction time: `hhmmss`.
    pub fn local_time(&self) -> String {
        format!("{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }

    /// Field 13, local transaction date: `MMDD`.
    pub fn local_date(&self) -> String {
        format!("{:02}{:02}", self.month, self.day)
    }

    /// Field 37, retrieval reference number: `YDDDhh` then the STAN, the usual layout, so
    /// one link does not repeat an RRN within a day.
    pub fn rrn(&self, stan: u32) -> String {
        format!(
            "{}{:03}{:02}{:06}",
            self.year % 10,
            self.day_of_year,
            self.hour,
            stan
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + u64::from(month <= 2)) as u32;
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_known_instant() {
        // 2024-02-29T13:05:09Z, a leap day.
        let stamp = Stamp::from_unix(1_709_211_909);
        assert_eq!(stamp.transmission_time(), "0229130509");
        assert_eq!(stamp.local_time(), "130509");
        assert_eq!(stamp.local_date(), "0229");
        assert_eq!(stamp.rrn(42), "406013000042");
    }

    #[test]
    fn new_year_and_end_of_a_leap_year() {
        assert_eq!(Stamp::from_unix(0).rrn(1), "000100000001");
        // 2024-12-31T23:59:59Z is day 366.
        assert_eq!(Stamp::from_unix(1_735_689_599).rrn(7), "436623000007");
    }
}
