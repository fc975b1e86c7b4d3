#!/bin/busybox sh
# /init of the test guest (copied into the initramfs by build-initramfs.sh). There is no udev
# and no root filesystem: devtmpfs creates the /dev/video* nodes as the drivers register them.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
up() { cut -d' ' -f1 /proc/uptime; }
echo "guest: kernel $(uname -r), $(nproc) cpus, up $(up) s"

# One module per line, dependencies first, with its parameters (build-initramfs.sh).
while read -r module params; do
  # shellcheck disable=SC2086 # parameters are separate words
  insmod "/modules/$module" $params || echo "guest: insmod $module failed"
done </modules/load-order
echo "guest: modules loaded at $(up) s"
for node in /sys/class/video4linux/video*; do
  [ -e "$node" ] && echo "guest: /dev/${node##*/} is $(cat "$node/name")"
done

timeout 300 /v4l2_guest_check
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "guest: kernel log tail"
  dmesg | tail -n 40
fi
echo "guest: v4l2_guest_check exit code $rc at $(up) s"

# The SDK's own tests that need these drivers; FLOWCLOUD_V4L2_GUEST makes a missing driver a
# failure rather than a skip.
FLOWCLOUD_V4L2_GUEST=1 timeout 120 /edge_unit_tests --test-threads 1 --nocapture in_guest_
echo "guest: edge_unit_tests exit code $? at $(up) s"
poweroff -f
