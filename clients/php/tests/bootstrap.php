<?php

declare(strict_types=1);

// Composer's autoloader when installed with it, else the package's own (no dependencies).
$composer = __DIR__ . '/../vendor/autoload.php';
require is_file($composer) ? $composer : __DIR__ . '/../autoload.php';
