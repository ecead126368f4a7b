//! The ledger: accounts, accepted payments and idempotency keys.
//!
//! Kept free of HTTP so the money rules can be tested directly. Callers hold
//! it behind one lock (see `AppState`), which makes `pay` atomic.

use std::collections::HashMap;

use crate::accounts::{self, Account};
use crate::payments::{Payment, PaymentError, PaymentRequest};

/// Accounts, payments and idempotency keys of one instance.
#[derive(Debug)]
pub struct Ledger {
    accounts: Vec<Account>,
    payments: HashMap<String, Payment>,
    /// Key -> (payment id, the validated request it was used for).
    keys: HashMap<String, (String, PaymentRequest)>,
    seq: u64,
}

impl Ledger {
    /// A ledger holding the three demo accounts and no payments.
    pub fn seeded() -> Ledger {
        Ledger {
            accounts: accounts::seed(),
            payments: HashMap::new(),
            keys: HashMap::new(),
            seq: 0,
        }
    }

    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn payment(&self, id: &str) -> Option<&Payment> {
        self.payments.get(id)
    }

    /// Executes a payment once per key. Returns the payment and whether it is
    /// a replay of an earlier request with the same key.
    pub fn pay(&mut self, key: &str, req: PaymentRequest) -> Result<(Payment, bool), PaymentError> {
        let req = req.validate()?;
        if let Some((id, first)) = self.keys.get(key) {
            return if *first == req {
                Ok((self.payments[id].clone(), true))
            } else {
                Err(PaymentError::KeyReused)
            };
        }
        let from = self
            .accounts
            .iter()
            .position(|a| a.id == req.from_account)
            .ok_or(PaymentError::UnknownAccount)?;
        if self.accounts[from].currency != req.currency {
            return Err(PaymentError::CurrencyMismatch);
        }
        let to = self.accounts.iter().position(|a| a.iban == req.to_iban);
        if let Some(to) = to {
            if to == from {
                return Err(PaymentError::SameAccount);
            }
            if self.accounts[to].currency != req.currency {
                return Err(PaymentError::CurrencyMismatch);
            }
        }
        if self.accounts[from].balance < req.amount {
            return Err(PaymentError::InsufficientFunds);
        }
        // All checks passed: nothing below can fail.
        self.accounts[from].balance.0 -= req.amount.0;
        if let Some(to) = to {
            self.accounts[to].balance.0 += req.amount.0;
        }
        self.seq += 1;
        let payment = Payment {
            id: format!("PAY-{:06}", self.seq),
            status: "accepted",
            from_account: req.from_account.clone(),
            to_iban: req.to_iban.clone(),
            amount: req.amount,
            currency: req.currency.clone(),
            reference: req.reference.clone(),
            idempotency_key: key.to_owned(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        self.payments.insert(payment.id.clone(), payment.clone());
        self.keys.insert(key.to_owned(), (payment.id.clone(), req));
        Ok((payment, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;

    fn req(from: &str, iban: &str, amount: &str, cur: &str) -> PaymentRequest {
        PaymentRequest {
            from_account: from.into(),
            to_iban: iban.into(),
            amount: Amount::parse(amount).unwrap(),
            currency: cur.into(),
            reference: None,
        }
    }

    const EXT: &str = "FR1420041010050500013M02606";

    fn balance(l: &Ledger, id: &str) -> i64 {
        l.account(id).unwrap().balance.0
    }

    #[test]
    fn same_key_same_payment_never_doubles() {
        let mut l = Ledger::seeded();
        let (p1, replay1) = l.pay("k1", req("ACC-1001", EXT, "20.35", "EUR")).unwrap();
        // Same payload, IBAN written differently: still the same request.
        let again = req(
            "ACC-1001",
            "fr14 2004 1010 0505 0001 3M02 606",
            "20.35",
            "EUR",
        );
        let (p2, replay2) = l.pay("k1", again).unwrap();
        assert!(!replay1);
        assert!(replay2);
        assert_eq!(p1, p2);
        assert_eq!(balance(&l, "ACC-1001"), 150_000);
        assert_eq!(l.payments.len(), 1);

        let (p3, _) = l.pay("k2", req("ACC-1001", EXT, "20.35", "EUR")).unwrap();
        assert_ne!(p3.id, p1.id);
        assert_eq!(balance(&l, "ACC-1001"), 147_965);
    }

    #[test]
    fn reused_key_with_other_payload_is_refused() {
        let mut l = Ledger::seeded();
        l.pay("k", req("ACC-1001", EXT, "1.00", "EUR")).unwrap();
        let err = l.pay("k", req("ACC-1001", EXT, "2.00", "EUR")).unwrap_err();
        assert_eq!(err, PaymentError::KeyReused);
        assert_eq!(balance(&l, "ACC-1001"), 151_935);
    }

    #[test]
    fn insufficient_funds_does_not_consume_key() {
        let mut l = Ledger::seeded();
        let err = l
            .pay("k", req("ACC-1003", EXT, "12.51", "EUR"))
            .unwrap_err();
        assert_eq!(err, PaymentError::InsufficientFunds);
        assert_eq!(balance(&l, "ACC-1003"), 1_250);
        // Money arrives from another account, then the same key succeeds.
        l.pay(
            "top-up",
            req("ACC-1001", "NL91ABNA0417164300", "1.00", "EUR"),
        )
        .unwrap();
        let (p, replay) = l.pay("k", req("ACC-1003", EXT, "12.51", "EUR")).unwrap();
        assert!(!replay);
        assert_eq!(p.amount, Amount(1_251));
        assert_eq!(balance(&l, "ACC-1003"), 99);
    }

    #[test]
    fn business_rules() {
        let mut l = Ledger::seeded();
        let cases = [
            (req("ACC-9", EXT, "1", "EUR"), PaymentError::UnknownAccount),
            (
                req("ACC-1001", EXT, "1", "GBP"),
                PaymentError::CurrencyMismatch,
            ),
            // Internal creditor in another currency.
            (
                req("ACC-1001", "GB82WEST12345698765432", "1", "EUR"),
                PaymentError::CurrencyMismatch,
            ),
            (
                req("ACC-1001", "DE89370400440532013000", "1", "EUR"),
                PaymentError::SameAccount,
            ),
        ];
        for (r, want) in cases {
            assert_eq!(l.pay("k", r).unwrap_err(), want);
        }
        assert!(l.payments.is_empty());
    }

    #[test]
    fn validation() {
        let mut l = Ledger::seeded();
        let bad = [
            req(" ", EXT, "1", "EUR"),
            req("ACC-1001", "FR1420041010050500013M02607", "1", "EUR"),
            req("ACC-1001", EXT, "0", "EUR"),
            req("ACC-1001", EXT, "1", "eur"),
            req("ACC-1001", EXT, "1", "EURO"),
            PaymentRequest {
                reference: Some("x".repeat(141)),
                ..req("ACC-1001", EXT, "1", "EUR")
            },
        ];
        for r in bad {
            let e = l.pay("k", r.clone()).unwrap_err();
            assert!(matches!(e, PaymentError::Invalid(_)), "{r:?} gave {e:?}");
        }
    }
}
