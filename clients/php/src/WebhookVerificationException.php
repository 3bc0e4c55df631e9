<?php

declare(strict_types=1);

namespace Qsm\Webhooks;

/**
 * Why a received webhook did not verify. `getReason()` is one of the stable names the shared
 * test vectors use: `missing_header`, `bad_timestamp`, `too_old`, `too_new`, `no_signature`,
 * `mismatch`. Answer such a request 400 (or 401) and do not act on its body.
 */
class WebhookVerificationException extends \RuntimeException
{
    /** @var string */
    private $reason;

    public function __construct(string $reason, string $message)
    {
        parent::__construct($message);
        $this->reason = $reason;
    }

    public function getReason(): string
    {
        return $this->reason;
    }
}
