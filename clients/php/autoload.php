<?php
// For installs without Composer (shared hosting): require this file, then use Qsm\Webhooks\….
spl_autoload_register(static function (string $class): void {
    $prefix = 'Qsm\\Webhooks\\';
    if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
