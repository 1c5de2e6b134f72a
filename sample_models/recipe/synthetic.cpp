#include "sample_models/recipe/synthetic.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace deformscope::samples {
namespace {

constexpr double kPi = std::numbers::pi;

// SplitMix64: tiny, fast and fully specified, so samples are identical on every
// platform and library version (std::uniform_real_distribution is not).
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(mix(seed ^ 0x5DEECE66DULL)) {}

    uint64_t next() {
        state_ += 0x9E3779B97F4A7C15ULL;
        return mix(state_);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; } // [0, 1)
    double uniform(double a, double b) { return a + (b - a) * uniform(); }
    int64_t below(int64_t n) { return static_cast<int64_t>(uniform() * static_cast<double>(n)); }
    bool chance(double p) { return uniform() < p; }
    double normal() { // Box-Muller
        const double u1 = 1.0 - uniform(); // (0, 1]
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
    }

private:
    static uint64_t mix(uint64_t z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    uint64_t state_;
};

using Colour = std::array<double, 3>;

Colour randomColour(Rng& rng) {
    return {rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95)};
}

double distance(const Colour& a, const Colour& b) {
    return std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
}

// A sinusoid grating with values in [0, 1]: `cycles` periods across `size`
// pixels, orientation `theta`, phase `phase`.
struct Grating {
    double kx = 0, ky = 0, phase = 0;
    Grating() = default;
    Grating(double size, double cycles, double theta, double phase_)
        : kx(2.0 * kPi * cycles / size * std::cos(theta)), ky(2.0 * kPi * cycles / size * std::sin(theta)),
          phase(phase_) {}
    double operator()(double x, double y) const { return 0.5 + 0.5 * std::sin(kx * x + ky * y + phase); }
};

// Signed distance (pixels, negative inside; exact for the disc, a close
// approximation elsewhere) of the point (x, y) to the object's outline.
double signedDistance(const SyntheticObject& o, double x, double y) {
    const double dx = x - o.cx, dy = y - o.cy;
    switch (o.cls) {
    case kDisc:
        return std::sqrt(dx * dx + dy * dy) - o.size / 2.0;
    case kSquare: {
        const double c = std::cos(o.angle), s = std::sin(o.angle);
        return std::max(std::abs(dx * c + dy * s), std::abs(-dx * s + dy * c)) - o.size / 2.0;
    }
    case kTriangle: {
        // Equilateral: distance to each edge's line along its outward normal, minus the inradius.
        // The normals sit halfway between the vertices (which are at angle + 2πk/3).
        const double inradius = o.size / (2.0 * std::sqrt(3.0));
        double d = -1e9;
        for (int k = 0; k < 3; ++k) {
            const double a = o.angle + kPi / 3.0 + 2.0 * kPi * k / 3.0;
            d = std::max(d, dx * std::cos(a) + dy * std::sin(a) - inradius);
        }
        return d;
    }
    default:
        throw std::logic_error("signedDistance: not a shape class");
    }
}

// Offsets of the object's bounding box from its centre: {x0, x1, y0, y1}.
std::array<double, 4> extent(const SyntheticObject& o) {
    switch (o.cls) {
    case kDisc:
        return {-o.size / 2, o.size / 2, -o.size / 2, o.size / 2};
    case kSquare: {
        const double e = o.size / 2 * (std::abs(std::cos(o.angle)) + std::abs(std::sin(o.angle)));
        return {-e, e, -e, e};
    }
    default: { // triangle: its vertices sit at the circumradius, at angle + 2πk/3
        const double r = o.size / std::sqrt(3.0);
        std::array<double, 4> b = {1e9, -1e9, 1e9, -1e9};
        for (int k = 0; k < 3; ++k) {
            const double a = o.angle + 2.0 * kPi * k / 3.0;
            b[0] = std::min(b[0], r * std::cos(a));
            b[1] = std::max(b[1], r * std::cos(a));
            b[2] = std::min(b[2], r * std::sin(a));
            b[3] = std::max(b[3], r * std::sin(a));
        }
        return b;
    }
    }
}

double circumradius(const SyntheticObject& o) {
    switch (o.cls) {
    case kDisc:
        return o.size / 2;
    case kSquare:
        return o.size / std::sqrt(2.0);
    default:
        return o.size / std::sqrt(3.0);
    }
}

double area(const SyntheticObject& o) {
    switch (o.cls) {
    case kDisc:
        return kPi * o.size * o.size / 4.0;
    case kSquare:
        return o.size * o.size;
    default:
        return std::sqrt(3.0) / 4.0 * o.size * o.size;
    }
}

// A uniform draw of the centre coordinate that keeps [lo, hi] offsets inside
// [0, size]; when the object is larger than the image, it straddles the middle.
double placeCentre(Rng& rng, double lo, double hi, double size) {
    double a = -lo, b = size - hi;
    if (a > b)
        std::swap(a, b);
    return rng.uniform(a, b);
}

} // namespace

std::vector<std::string> classNames() {
    return {"background", "disc", "square", "triangle"};
}

double minObjectSize(int64_t size) {
    return 8.0 * static_cast<double>(size) / 128.0;
}

double maxObjectSize(int64_t size) {
    return 96.0 * static_cast<double>(size) / 128.0;
}

namespace {

// What an object looks like, apart from its outline: a base colour, a linear
// shading ramp across it and, on some objects, a faint grating of its own.
struct ObjectLook {
    Colour base{};
    double sx = 0, sy = 0; // the ramp's gradient (per pixel, in the object's own frame)
    double contrast = 0;   // the grating's; 0: none
    Grating pattern;
};

// A drawn scene, before rendering: the background, the objects and the noise level.
struct Scene {
    int64_t size = 0;
    double weight = 0; // of background grating 0 (1 - weight for grating 1)
    Colour a[2]{}, b[2]{};
    Grating g[2];
    std::vector<SyntheticObject> objects;
    std::vector<ObjectLook> looks;
    double sigma = 0; // sensor noise
};

// Draws a scene from `rng`. The order of the draws is generateSample's since the
// start, so every seed keeps its image.
Scene drawScene(Rng& rng, int64_t size) {
    Scene scene;
    scene.size = size;
    const double S = static_cast<double>(size);

    // Background: two coloured sinusoid gratings of random frequency, orientation
    // and phase, blended; colours from the same distribution as the objects'.
    Colour backgroundMean = {0, 0, 0};
    scene.weight = rng.uniform(0.45, 0.8);
    for (int k = 0; k < 2; ++k) {
        // Colours anywhere in the objects' range; a moderate contrast within a
        // grating, so object outlines stay the strongest edges.
        scene.a[k] = randomColour(rng);
        const double contrast = rng.uniform(0.1, 0.35);
        for (int c = 0; c < 3; ++c)
            scene.b[k][c] = std::clamp(scene.a[k][c] + rng.uniform(-contrast, contrast), 0.0, 1.0);
        const double cycles = std::exp(rng.uniform(std::log(1.5), std::log(S / 5.0)));
        const double theta = rng.uniform(0, kPi);
        scene.g[k] = Grating(S, cycles, theta, rng.uniform(0, 2 * kPi));
        const double w = k == 0 ? scene.weight : 1.0 - scene.weight;
        for (int c = 0; c < 3; ++c)
            backgroundMean[c] += w * (scene.a[k][c] + scene.b[k][c]) / 2.0;
    }

    // Objects: 1 to 3, sizes log-uniform; the largest drawn first, so a smaller
    // object may sit on a larger one but is never hidden under it.
    const int64_t count = 1 + rng.below(3);
    std::vector<double> sizes;
    for (int64_t i = 0; i < count; ++i)
        sizes.push_back(std::exp(rng.uniform(std::log(minObjectSize(size)), std::log(maxObjectSize(size)))));
    std::sort(sizes.rbegin(), sizes.rend());

    for (int64_t k = 0; k < count; ++k) {
        SyntheticObject o;
        o.cls = 1 + rng.below(3);
        o.size = sizes[static_cast<size_t>(k)];
        if (o.cls == kSquare)
            o.angle = rng.chance(0.5) ? 0.0 : rng.uniform(0, kPi / 2);
        else if (o.cls == kTriangle)
            o.angle = rng.uniform(0, 2 * kPi);
        const auto box = extent(o);
        // Prefer places that do not overlap earlier objects much.
        for (int attempt = 0; attempt < 40; ++attempt) {
            o.cx = placeCentre(rng, box[0], box[1], S);
            o.cy = placeCentre(rng, box[2], box[3], S);
            bool clear = true;
            for (const SyntheticObject& p : scene.objects) {
                const double d = std::hypot(o.cx - p.cx, o.cy - p.cy);
                clear = clear && d >= 0.8 * (circumradius(o) + circumradius(p));
            }
            if (clear)
                break;
        }
        o.expectedArea = area(o);
        o.fullyInside = o.cx + box[0] >= 0 && o.cx + box[1] <= S && o.cy + box[2] >= 0 && o.cy + box[3] <= S;

        ObjectLook look;
        // Colour: random, but not the background's average (or the object could vanish).
        look.base = randomColour(rng);
        for (int attempt = 0; attempt < 20 && distance(look.base, backgroundMean) < 0.3; ++attempt)
            look.base = randomColour(rng);
        // Shading: a linear ramp across the object, and on some objects a faint grating of their own.
        const double shade = rng.uniform(0.05, 0.25) / std::max(o.size / 2.0, 1.0);
        const double shadeAngle = rng.uniform(0, 2 * kPi);
        look.sx = shade * std::cos(shadeAngle);
        look.sy = shade * std::sin(shadeAngle);
        if (rng.chance(0.3)) {
            look.contrast = rng.uniform(0.1, 0.25);
            const double cycles = S / rng.uniform(4.0, 16.0);
            const double theta = rng.uniform(0, kPi);
            look.pattern = Grating(S, cycles, theta, rng.uniform(0, 2 * kPi));
        }
        scene.objects.push_back(o);
        scene.looks.push_back(look);
    }
    scene.sigma = rng.uniform(0.01, 0.06);
    return scene;
}

// A rendered frame, before noise: planar RGB, class ids and instance ids.
struct Frame {
    std::vector<float> image;
    std::vector<int64_t> mask, instances;
};

// Renders `scene`; with `motions` (one per object), each object k moved rigidly:
// rotated by motions[k].rotation about its centre, then translated by
// (motions[k].dx, motions[k].dy), its shading and grating moving with it. The
// background stays still. Without motions, the scene as drawn, bit for bit as
// generateSample has always rendered it.
Frame render(const Scene& scene, const std::vector<ObjectMotion>* motions) {
    const int64_t size = scene.size;
    const int64_t n = size * size;
    Frame f;
    // Planar RGB, as the [3, H, W] tensor it becomes; pixel (i, j) has its centre at (j + 0.5, i + 0.5).
    f.image.resize(static_cast<size_t>(3 * n));
    f.mask.assign(static_cast<size_t>(n), kBackground);
    f.instances.assign(static_cast<size_t>(n), 0);
    auto at3 = [&](int c, int64_t i, int64_t j) -> float& { return f.image[static_cast<size_t>(c * n + i * size + j)]; };

    const double weight = scene.weight;
    for (int64_t i = 0; i < size; ++i)
        for (int64_t j = 0; j < size; ++j) {
            const double x = j + 0.5, y = i + 0.5;
            const double v0 = scene.g[0](x, y), v1 = scene.g[1](x, y);
            for (int c = 0; c < 3; ++c)
                at3(c, i, j) = static_cast<float>(weight * (scene.a[0][c] + (scene.b[0][c] - scene.a[0][c]) * v0) +
                                                  (1.0 - weight) * (scene.a[1][c] + (scene.b[1][c] - scene.a[1][c]) * v1));
        }

    for (size_t k = 0; k < scene.objects.size(); ++k) {
        const SyntheticObject& o = scene.objects[k];
        const ObjectLook& look = scene.looks[k];
        const ObjectMotion* m = motions ? &(*motions)[k] : nullptr;
        // Where the object is in this frame (for its bounding box).
        SyntheticObject placed = o;
        if (m) {
            placed.cx += m->dx;
            placed.cy += m->dy;
            placed.angle += m->rotation;
        }
        const double cr = m ? std::cos(m->rotation) : 1.0, sr = m ? std::sin(m->rotation) : 0.0;
        // Only the object's bounding box (plus the anti-aliasing margin) can change.
        const auto box = extent(placed);
        const int64_t i0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(placed.cy + box[2] - 1)));
        const int64_t i1 = std::min<int64_t>(size, static_cast<int64_t>(std::ceil(placed.cy + box[3] + 1)));
        const int64_t j0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(placed.cx + box[0] - 1)));
        const int64_t j1 = std::min<int64_t>(size, static_cast<int64_t>(std::ceil(placed.cx + box[1] + 1)));
        for (int64_t i = i0; i < i1; ++i)
            for (int64_t j = j0; j < j1; ++j) {
                double x = j + 0.5, y = i + 0.5;
                if (m) { // the point of the undisplaced object that lands here
                    const double ux = x - placed.cx, uy = y - placed.cy;
                    x = o.cx + cr * ux + sr * uy;
                    y = o.cy - sr * ux + cr * uy;
                }
                const double d = signedDistance(o, x, y);
                const double alpha = std::clamp(0.5 - d, 0.0, 1.0); // anti-aliased edge
                if (alpha <= 0.0)
                    continue;
                if (d < 0) { // pixel centre inside
                    f.mask[static_cast<size_t>(i * size + j)] = o.cls;
                    f.instances[static_cast<size_t>(i * size + j)] = static_cast<int64_t>(k) + 1;
                }
                const double ramp = (x - o.cx) * look.sx + (y - o.cy) * look.sy +
                                    (look.contrast > 0 ? (look.pattern(x, y) - 0.5) * look.contrast : 0.0);
                for (int c = 0; c < 3; ++c) {
                    float& p = at3(c, i, j);
                    p = static_cast<float>(p * (1.0 - alpha) + (look.base[c] + ramp) * alpha);
                }
            }
    }
    return f;
}

// Sensor noise over everything, values clipped to [0, 1].
void addNoise(Rng& rng, double sigma, std::vector<float>& image) {
    for (float& p : image)
        p = static_cast<float>(std::clamp(p + sigma * rng.normal(), 0.0, 1.0));
}

at::Tensor imageTensor(std::vector<float>& image, int64_t size) {
    return at::from_blob(image.data(), {3, size, size}, at::kFloat).clone();
}

at::Tensor mapTensor(std::vector<int64_t>& map, int64_t size) {
    return at::from_blob(map.data(), {size, size}, at::kLong).clone();
}

} // namespace

at::Tensor imageBytes(const at::Tensor& image) {
    return (image * 255.0).round().clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
}

SyntheticSample generateSample(uint64_t seed, int64_t size) {
    if (size < 16)
        throw std::invalid_argument("generateSample: size must be at least 16, got " + std::to_string(size));
    Rng rng(seed);
    const Scene scene = drawScene(rng, size);
    Frame frame = render(scene, nullptr);
    addNoise(rng, scene.sigma, frame.image);

    SyntheticSample sample;
    sample.objects = scene.objects;
    sample.image = imageTensor(frame.image, size);
    sample.mask = mapTensor(frame.mask, size);
    sample.instances = mapTensor(frame.instances, size);
    return sample;
}

SyntheticPair generatePair(uint64_t seed, int64_t size) {
    if (size < 16)
        throw std::invalid_argument("generatePair: size must be at least 16, got " + std::to_string(size));
    // Frame A is generateSample(seed, size) itself; the motions and frame B's noise
    // come from a second generator, so they do not disturb frame A's draws.
    Rng rng(seed);
    const Scene scene = drawScene(rng, size);
    Frame a = render(scene, nullptr);
    addNoise(rng, scene.sigma, a.image);

    Rng moves(seed ^ 0xA1165EED0F1E1DULL);
    SyntheticPair pair;
    for (size_t k = 0; k < scene.objects.size(); ++k) {
        ObjectMotion m;
        m.dx = moves.uniform(-kPairMaxShift, kPairMaxShift);
        m.dy = moves.uniform(-kPairMaxShift, kPairMaxShift);
        m.rotation = moves.uniform(-kPairMaxRotationDeg, kPairMaxRotationDeg) * kPi / 180.0;
        pair.motions.push_back(m);
    }
    Frame b = render(scene, &pair.motions);
    addNoise(moves, scene.sigma, b.image);

    // The true motion of every pixel of frame A: where its centre's content is in frame B.
    const int64_t n = size * size;
    std::vector<float> motion(static_cast<size_t>(2 * n), 0.0f);
    for (int64_t i = 0; i < size; ++i)
        for (int64_t j = 0; j < size; ++j) {
            const int64_t id = a.instances[static_cast<size_t>(i * size + j)];
            if (id == 0)
                continue; // the background stays still
            const SyntheticObject& o = scene.objects[static_cast<size_t>(id - 1)];
            const ObjectMotion& m = pair.motions[static_cast<size_t>(id - 1)];
            const double ux = j + 0.5 - o.cx, uy = i + 0.5 - o.cy;
            const double cr = std::cos(m.rotation), sr = std::sin(m.rotation);
            motion[static_cast<size_t>(i * size + j)] = static_cast<float>(cr * ux - sr * uy + m.dx - ux);
            motion[static_cast<size_t>(n + i * size + j)] = static_cast<float>(sr * ux + cr * uy + m.dy - uy);
        }

    pair.a.objects = scene.objects;
    pair.a.image = imageTensor(a.image, size);
    pair.a.mask = mapTensor(a.mask, size);
    pair.a.instances = mapTensor(a.instances, size);
    pair.b = imageTensor(b.image, size);
    pair.bMask = mapTensor(b.mask, size);
    pair.bInstances = mapTensor(b.instances, size);
    pair.motion = at::from_blob(motion.data(), {2, size, size}, at::kFloat).clone();
    return pair;
}

} // namespace deformscope::samples
