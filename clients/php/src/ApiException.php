<?php

declare(strict_types=1);

namespace Qsm\Webhooks;

/**
 * An error answer of the API: its HTTP status, the API's stable error code (`invalid`,
 * `unauthorized`, `busy`, …), its message, the details (for `invalid`: each problem's JSON path
 * and message) and, for a 503, the seconds the server asked to wait. A failure to reach the
 * server at all has status 0 and code `transport`.
 */
class ApiException extends \RuntimeException
{
    /** @var int */
    private $status;
    /** @var string */
    private $errorCode;
    /** @var mixed */
    private $details;
    /** @var int|null */
    private $retryAfter;

    /**
     * @param mixed $details
     */
    public function __construct(int $status, string $errorCode, string $message, $details = null, ?int $retryAfter = null, ?\Throwable $previous = null)
    {
        parent::__construct($message, $status, $previous);
        $this->status = $status;
        $this->errorCode = $errorCode;
        $this->details = $details;
        $this->retryAfter = $retryAfter;
    }

    public function getStatus(): int
    {
        return $this->status;
    }

    public function getErrorCode(): string
    {
        return $this->errorCode;
    }

    /** @return mixed */
    public function getDetails()
    {
        return $this->details;
    }

    public function getRetryAfter(): ?int
    {
        return $this->retryAfter;
    }
}
